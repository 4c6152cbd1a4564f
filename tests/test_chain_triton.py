"""The chain's fused walk (`sogs_core.order.chain_triton`, the GPU's) against the walk in torch
ops, run by Triton's interpreter on this CPU: the same greedy paths under the same cost
(`chain.bit_cost`). On a GPU, bench/gpu_check.py compares the two at scene sizes."""
from __future__ import annotations

import json
import textwrap

import pytest

from .conftest import run_in_triton_interpreter

pytest.importorskip("triton")

CHECK = textwrap.dedent("""
    import json, torch
    from sogs_core.order.chain import _walk_chunks
    from sogs_core.order.chain_triton import chain_paths
    gen = torch.Generator().manual_seed(7)
    m, k, c = 3, 32, 14
    # bytes with local structure (a random walk per channel plus noise), wrapping at 256
    walk = torch.randint(-3, 4, (m * k, c), generator=gen).cumsum(0)
    x = ((walk + torch.randint(0, 40, (m * k, c), generator=gen)) % 256).view(m, k, c)
    w = torch.ones(c)
    w[:3] = 3.0
    a = _walk_chunks(x.float(), w)
    b = chain_paths(x.to(torch.int16), w)
    print(json.dumps({"torch": a.tolist(), "triton": b.tolist()}))
""")


def test_fused_walk_takes_the_torch_walks_paths_in_the_interpreter():
    paths = json.loads(run_in_triton_interpreter(CHECK))
    for a, b in zip(paths["torch"], paths["triton"]):
        assert sorted(b) == list(range(len(b))) and b[0] == 0     # a permutation of the chunk from 0
        assert a == b
