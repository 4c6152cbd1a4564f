"""The Hilbert keys' kernel (`sogs_core.order.hilbert_triton`, the GPU's) against the keys in
torch ops (`curves.hilbert_keys` on a CPU), run by Triton's interpreter on this CPU: the same
keys bit for bit, at every width a caller uses and at the corners of the grid."""
from __future__ import annotations

import json
import textwrap

import pytest

from .conftest import run_in_triton_interpreter

pytest.importorskip("triton")

CHECK = textwrap.dedent("""
    import json, torch
    from sogs_core.order import curves, hilbert_triton
    gen = torch.Generator().manual_seed(3)
    out = {}
    for bits in (21, 10, 3, 1):
        top = (1 << bits) - 1
        corners = torch.tensor([[a, b, c] for a in (0, top) for b in (0, top) for c in (0, top)])
        codes = torch.cat([corners, torch.randint(0, top + 1, (3000, 3), generator=gen)])
        a, b = curves.hilbert_keys(codes, bits), hilbert_triton.hilbert_keys(codes, bits)
        out[bits] = [int((a != b).sum()), len(set(b.tolist())) == len(set(map(tuple, codes.tolist())))]
    out["empty"] = hilbert_triton.hilbert_keys(torch.zeros(0, 3, dtype=torch.long), 21).tolist()
    print(json.dumps(out))
""")


def test_kernel_keys_equal_the_torch_keys_in_the_interpreter():
    got = json.loads(run_in_triton_interpreter(CHECK))
    for bits in ("21", "10", "3", "1"):
        differ, one_to_one = got[bits]
        assert differ == 0, f"{differ} keys differ at {bits} bits"
        assert one_to_one                        # distinct cells, distinct keys
    assert got["empty"] == []


GUARD = textwrap.dedent("""
    import json, warnings, torch
    from sogs_core.order import curves, hilbert_triton
    cpu = torch.device("cpu")
    out = {"good": curves.checked_kernel(cpu) is hilbert_triton.hilbert_keys}
    real = hilbert_triton.hilbert_keys
    for case, fake in (("wrong", lambda c, b: real(c, b) ^ 1), ("raises", lambda c, b: 1 / 0)):
        curves._KERNELS.clear()
        hilbert_triton.hilbert_keys = fake
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            out[case] = [curves.checked_kernel(cpu) is None, [str(w.message) for w in said]]
    print(json.dumps(out))
""")


def test_the_kernel_serves_only_once_it_matched_the_torch_keys():
    """`curves.checked_kernel`: the kernel is used where its keys equal the torch ops' on the
    sample; a kernel that gives other keys or fails is set aside with a warning."""
    got = json.loads(run_in_triton_interpreter(GUARD))
    assert got["good"]
    assert got["wrong"][0] and "differ" in got["wrong"][1][0]
    assert got["raises"][0] and "failed" in got["raises"][1][0]
