"""The chain's greedy walk as one Triton kernel: a program per chunk, all its steps in registers.

Why: in torch ops each of the chunk's K steps is ~10 launches, each a full pass over the
(N, C) bytes of the scene (memory-bound; bench/NOTES.md). Here a program loads its chunk's
K x C bytes once, then per step takes the current splat's row, scores every splat of the chunk
(the same cost as `chain.greedy_chain`: `chain.bit_cost`, Mitchell's log2(1 + d), per channel with
d the byte difference, weighted), masks the visited ones and moves to the argmin, writing one index per
step. The scene's bytes are read once in all.

Same walk as the torch version up to float rounding: the per-splat cost is summed in another
order, so a near-tie may break the other way (bench/gpu_check.py compares the two walks' costs).
Import fails (ImportError) where Triton is missing; `chain` then uses torch ops.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _chain_kernel(x_ptr, w_ptr, path_ptr, K: tl.constexpr, CP: tl.constexpr):
    """Greedy path through chunk `pid`: x (m, K, CP) bytes as int16, path (m, K) int32 out."""
    pid = tl.program_id(0)
    rows = tl.arange(0, K)
    chans = tl.arange(0, CP)
    x = tl.load(x_ptr + pid * K * CP + rows[:, None] * CP + chans[None, :]).to(tl.float32)
    w = tl.load(w_ptr + chans)
    taken = rows == 0
    cur = tl.min(rows, axis=0)                      # 0, as a tensor
    tl.store(path_ptr + pid * K, cur)
    for j in range(1, K):
        here = tl.sum(tl.where(rows[:, None] == cur, x, 0.0), axis=0)       # (CP,) the current row
        d = tl.abs(x - here[None, :])
        bits = ((d + 1.0).to(tl.int32, bitcast=True) - (127 << 23)).to(tl.float32) * (1.0 / (1 << 23))
        cost = tl.sum(bits * w[None, :], axis=1)
        cost = tl.where(taken, float("inf"), cost)
        cur = tl.argmin(cost, axis=0)
        taken = taken | (rows == cur)
        tl.store(path_ptr + pid * K + j, cur)


def chain_paths(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """x: (m, K, C) integer bytes on a CUDA device, K a power of two; weights (C,) float32.
    Returns (m, K) int64: the visiting order of each chunk's members, starting at member 0."""
    m, k, c = x.shape
    cp = max(16, triton.next_power_of_2(c))
    xp = torch.zeros(m, k, cp, dtype=torch.int16, device=x.device)
    xp[:, :, :c] = x
    wp = torch.zeros(cp, dtype=torch.float32, device=x.device)
    wp[:c] = weights
    path = torch.empty(m, k, dtype=torch.int32, device=x.device)
    if m:
        # a chunk's K x CP bytes live in registers: more warps for a larger chunk, so each
        # thread holds about as many as at K = 256
        _chain_kernel[(m,)](xp, wp, path, K=k, CP=cp, num_warps=min(16, max(4, k // 64)))
    return path.long()
