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
