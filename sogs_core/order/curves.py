"""Space-filling-curve keys of splat positions: Morton (Z-order) and Hilbert, 21 bits per axis.

Why: a curve order is the cheap baseline every peer ships (splat-transform and LichtFeld Studio
sort by Morton code) and the backbone of our default: consecutive splats on the curve are close
in space, so the high position bytes (`means_u`) change rarely along an image row. The curve runs
over the same log transform the format quantizes positions with, so its cells line up with the
stored 16-bit grid. Pure torch integer ops: the same code and the same keys on a CPU and a GPU.
"""
from __future__ import annotations

import warnings
from typing import Callable, Optional

import torch

BITS = 21   # per axis: 63-bit keys in an int64

#: a Morton interleave with y, the axis the real scenes stand along, in the highest bit of each
#: triple (then x, then z in the lowest): the curve cuts space into horizontal slabs first at every
#: level. The default order's Morton candidate: slightly smaller than the x-lowest interleave on
#: all three real scenes of ../shared/scenes, mostly in scales and sh0 (bench/NOTES.md).
Y_TOP = (2, 0, 1)


def position_codes(means: torch.Tensor, bits: int = BITS) -> torch.Tensor:
    """(N, 3) positions -> (N, 3) int64 in [0, 2^bits) on the format's log-transformed axes."""
    t = means.double()
    t = torch.sign(t) * torch.log1p(t.abs())
    lo, hi = t.min(0).values, t.max(0).values
    span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    top = (1 << bits) - 1
    return ((t - lo) / span * top).round().clamp(0, top).long()


def _spread3(v: torch.Tensor) -> torch.Tensor:
    """Bits 0..20 of v moved to bits 0, 3, 6, ... 60 (the classic magic-number bit spread)."""
    v = v & 0x1FFFFF
    v = (v | (v << 32)) & 0x1F00000000FFFF
    v = (v | (v << 16)) & 0x1F0000FF0000FF
    v = (v | (v << 8)) & 0x100F00F00F00F00F
    v = (v | (v << 4)) & 0x10C30C30C30C30C3
    return (v | (v << 2)) & 0x1249249249249249


def morton_keys(codes: torch.Tensor, axes: tuple[int, int, int] = (0, 1, 2)) -> torch.Tensor:
    """(N, 3) 21-bit codes -> (N,) int64 Morton keys; axes[0] in the lowest bit of each triple,
    axes[2] in the highest (the default: x lowest, as splat-transform and LichtFeld interleave)."""
    a, b, c = axes
    return _spread3(codes[:, a]) | (_spread3(codes[:, b]) << 1) | (_spread3(codes[:, c]) << 2)


#: device -> the Hilbert kernel once it gave the torch ops' keys there, or None (`checked_kernel`)
_KERNELS: dict[str, Optional[Callable[[torch.Tensor, int], torch.Tensor]]] = {}


def checked_kernel(device: torch.device) -> Optional[Callable[[torch.Tensor, int], torch.Tensor]]:
    """`hilbert_triton.hilbert_keys` once it has given the same keys as the torch ops on a
    sample on `device` (the grid's corners and 4,096 random codes), checked once a process;
    None where Triton is missing, the kernel fails, or a key differs (with a warning: the
    torch ops then serve, slower on a GPU, the same order)."""
    key = str(device)
    if key not in _KERNELS:
        _KERNELS[key] = None
        try:
            from sogs_core.order import hilbert_triton
        except ImportError:
            return None
        top = (1 << BITS) - 1
        corners = torch.tensor([[a, b, c] for a in (0, top) for b in (0, top) for c in (0, top)])
        sample = torch.cat([corners, torch.randint(0, top + 1, (4096, 3),
                                                   generator=torch.Generator().manual_seed(0))]).to(device)
        try:
            same = torch.equal(hilbert_triton.hilbert_keys(sample, BITS), _hilbert_keys_torch(sample, BITS))
        except Exception as err:                   # a kernel that cannot build or run here
            warnings.warn(f"Hilbert keys in torch ops on {device}: the Triton kernel failed ({err})")
            return None
        if not same:
            warnings.warn(f"Hilbert keys in torch ops on {device}: the Triton kernel's keys differ")
            return None
        _KERNELS[key] = hilbert_triton.hilbert_keys
    return _KERNELS[key]


def hilbert_keys(codes: torch.Tensor, bits: int = BITS) -> torch.Tensor:
    """(N, 3) codes -> (N,) int64 Hilbert keys (Skilling's transpose form, vectorised).

    Unlike Morton, the Hilbert curve never jumps: consecutive keys are adjacent cells, which
    keeps the high position bytes in longer runs (bench/NOTES.md). Branch-free on 32-bit lanes:
    each level's swap-or-invert is a mask from the level's bit, the Gray-code inverse a suffix
    XOR in log2(bits) steps, the interleave `_spread3` (the same keys as the per-level loops,
    several times faster on a CPU). On a CUDA device with Triton: one kernel, the same keys
    (`hilbert_triton`, checked against these ops once a process: `checked_kernel`)."""
    if bits > BITS:
        raise ValueError(f"at most {BITS} bits per axis, not {bits}")
    if codes.is_cuda:
        kernel = checked_kernel(codes.device)
        if kernel is not None:
            return kernel(codes, bits)
    return _hilbert_keys_torch(codes, bits)


def _hilbert_keys_torch(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """`hilbert_keys` in torch integer ops, on any device."""
    x = [codes[:, i].to(torch.int32) for i in range(3)]
    for k in range(bits - 1, 0, -1):               # undo excess work: Gray-code inverse per level
        p = (1 << k) - 1
        for i in range(3):
            hit = -((x[i] >> k) & 1)               # all ones where bit k of x[i] is set
            if i == 0:
                x[0] = x[0] ^ (hit & p)            # invert the low bits
            else:
                t = ((x[0] ^ x[i]) & p) & ~hit     # else exchange them with x[0]
                x[0] = x[0] ^ (hit & p) ^ t
                x[i] = x[i] ^ t
    x[1] = x[1] ^ x[0]
    x[2] = x[2] ^ x[1]
    t = x[2] >> 1                                  # bit j: the XOR of x[2]'s bits above j
    shift = 1
    while shift < bits:
        t = t ^ (t >> shift)
        shift <<= 1
    x0, x1, x2 = ((xi ^ t).to(torch.int64) for xi in x)
    return (_spread3(x0) << 2) | (_spread3(x1) << 1) | _spread3(x2)


def run_ids(lengths: list[int], device: torch.device) -> torch.Tensor:
    """The `runs` argument of curve_order for consecutive runs of these lengths: (sum,) ids 0, 0, .. 1, .."""
    return torch.repeat_interleave(torch.arange(len(lengths), device=device), torch.tensor(lengths, device=device))


def curve_order(means: torch.Tensor, curve: str = "hilbert", runs: Optional[torch.Tensor] = None,
                axes: tuple[int, int, int] = (0, 1, 2)) -> torch.Tensor:
    """Splat indices (N,) int64 sorted along the curve (ties keep input order). `runs`: a group
    id per splat (N,); the order then goes group by group, each group along the curve (a
    streamed SOG's leaves in one file, the decimation's walk inside each leaf). `axes`: the
    Morton interleave (`morton_keys`)."""
    codes = position_codes(means)
    keys = hilbert_keys(codes) if curve == "hilbert" else morton_keys(codes, axes)
    walk = torch.argsort(keys, stable=True)
    if runs is not None:
        walk = walk[torch.argsort(runs[walk], stable=True)]
    return walk
