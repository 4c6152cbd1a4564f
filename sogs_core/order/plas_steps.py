"""What the torch and CUDA PLAS backends share: the keyed groups and the host's step loop.

Why a module of its own: `plas` picks a backend and `plas_cuda` implements one; both need the
same Feistel keys (so a CUDA step and a torch step from the same state agree cell for cell) and
the same per-level loop. Keeping them here lets `plas` import `plas_cuda` without a circle.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

PERMS_4 = torch.tensor(list(itertools.permutations(range(4))), dtype=torch.long)  # (24, 4); row 0 = identity


# -- the keyed bijection that picks the groups --------------------------------------------------
MIX_A = 0x7FEB352D   # odd multipliers below 2**31, so the int64 torch version never overflows
MIX_B = 0x2C1B3C6D


def feistel_half_bits(m: int) -> int:
    """Half the bit width of the smallest even-width power of two >= m (the Feistel domain)."""
    bits = max(2, (m - 1).bit_length())
    return (bits + 1) // 2


def _mix(v, key: int):
    """The kernel's mix32 on python ints, numpy int64 or torch int64 values below 2**32."""
    v = (v ^ key) & 0xFFFFFFFF
    v = (v * MIX_A) & 0xFFFFFFFF
    v = v ^ (v >> 15)
    v = (v * MIX_B) & 0xFFFFFFFF
    return v ^ (v >> 12)


def _feistel(v, keys: tuple[int, ...], half: int):
    mask = (1 << half) - 1
    left, right = v >> half, v & mask
    for k in keys:
        left, right = right, left ^ (_mix(right, k) & mask)
    return (left << half) | right


def step_keys(base, s: int) -> tuple[int, int, int, int]:
    """The four Feistel keys of step s of a config with base keys `base` (the CUDA kernel's mix32)."""
    return tuple(_mix(s, int(b)) for b in base)


def block_permutation(m: int, keys: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """A bijection of range(m) (int64), the same one the CUDA kernel computes per thread.

    Computed with numpy for a CPU device: ~30 small integer ops per step, each far cheaper in
    numpy than as a torch op."""
    half = feistel_half_bits(m)
    if device.type == "cpu":
        p, nonzero = _feistel(np.arange(m, dtype=np.int64), keys, half), np.flatnonzero
    else:
        p = _feistel(torch.arange(m, dtype=torch.long, device=device), keys, half)
        nonzero = lambda b: torch.nonzero(b).squeeze(1)  # noqa: E731
    out = nonzero(p >= m)
    while len(out):                        # cycle walking, on the values still out of range only
        p[out] = _feistel(p[out], keys, half)
        out = out[p[out] >= m]
    return torch.from_numpy(p) if device.type == "cpu" else p


def run_level_stepwise(be, grid: torch.Tensor, order: torch.Tensor, target: torch.Tensor, r: int,
                       block: int, draws: list, brk: float, min_configs: int, cap: int,
                       steps_out: torch.Tensor) -> None:
    """One level of the schedule, a step at a time with the gain read back after each.

    draws: per config (sy, sx, base keys). Each config takes a fresh target of radius r and runs
    steps until one gains less than brk relative to the cost before it (or cap steps); the
    level ends after a config whose first step gained less than brk, once min_configs ran.
    steps_out[k] receives config k's step count (0: not run). The CUDA kernel does the same on
    the device (plas_config_steps)."""
    sums = torch.zeros(2, dtype=torch.float64, device=grid.device)
    counts = [0] * len(draws)
    for k, (sy, sx, base) in enumerate(draws):
        be.target(grid, r, target)
        s = 0
        while True:
            sums.zero_()
            be.step(grid, order, target, block, sy, sx, step_keys(base, s), sums)
            before, after = sums.tolist()
            s += 1
            gain = (before - after) / before if before > 0 else 0.0
            if gain < brk or s >= cap:
                break
        counts[k] = s
        if s == 1 and k + 1 >= min_configs:
            break
    steps_out.copy_(torch.tensor(counts, dtype=steps_out.dtype))
