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
    """(N, 3) codes -> (N,) int64 Hilbert keys (the curve of Skilling's transpose form).

    Unlike Morton, the Hilbert curve never jumps: consecutive keys are adjacent cells, which
    keeps the high position bytes in longer runs (bench/NOTES.md). The keys are those of
    `_hilbert_keys_transpose`; the torch ops walk them as a finite-state machine, three levels a
    table lookup (`_hilbert_keys_torch`). On a CUDA device with Triton: one kernel, the same keys
    (`hilbert_triton`, checked against these ops once a process: `checked_kernel`)."""
    if bits > BITS:
        raise ValueError(f"at most {BITS} bits per axis, not {bits}")
    if codes.is_cuda:
        kernel = checked_kernel(codes.device)
        if kernel is not None:
            return kernel(codes, bits)
    return _hilbert_keys_torch(codes, bits)


def _hilbert_keys_transpose(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """The definition of the keys: Skilling's transpose algorithm, vectorised. Branch-free on
    32-bit lanes: each level's swap-or-invert is a mask from the level's bit, the Gray-code
    inverse a suffix XOR in log2(bits) steps, the interleave `_spread3`. Dozens of ops a level:
    `_hilbert_keys_torch` gives the same keys from tables read off this function."""
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


#: (shift, mask) of three rounds that move a 21-bit code's 3-bit group g (bits 3 g..3 g + 2) to
#: bit 9 g: up by 24 where g has bit 2 set, then by 12 where bit 1, then by 6 where bit 0
_SPREAD9 = ((24, 0xFFF | 0x1FF << 36),
            (12, 0x3F | 0x3F << 18 | 0x3F << 36 | 0x7 << 54),
            (6, 0x7 | 0x7 << 9 | 0x7 << 18 | 0x7 << 27 | 0x7 << 36 | 0x7 << 45 | 0x7 << 54))

#: rows of codes per pass and CPU thread: a pass's buffers stay in the core's cache
_BLOCK = 1 << 14

#: device -> (next state * 512, 9-bit key digit), indexed by state * 512 + chunk (`_hilbert_tables`)
_TABLES: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}


def _octant_bits(octants: torch.Tensor) -> torch.Tensor:
    """(K,) octants (x0 x1 x2 bits from high to low) -> (K, 3) their bits per axis."""
    return torch.stack([(octants >> (2 - i)) & 1 for i in range(3)], 1)


def _hilbert_digit_maps(prefixes: torch.Tensor, length: int) -> list[tuple[int, ...]]:
    """(P, 3) codes of `length` levels -> per code, the 6-bit digits of the transpose keys of
    its 64 continuations by two more levels (octant a, then b: index 8 a + b)."""
    pairs = torch.arange(64)
    low = _octant_bits(pairs >> 3) << 1 | _octant_bits(pairs & 7)
    codes = ((prefixes[:, None, :] << 2) | low).reshape(-1, 3)
    digits = _hilbert_keys_transpose(codes, length + 2) & 63
    return [tuple(row) for row in digits.view(-1, 64).tolist()]


def _hilbert_tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The Hilbert curve as a finite-state machine read off `_hilbert_keys_transpose`: a state
    is what a prefix of octants leaves behind, known by the digits the keys give below it; per
    (state, octant) a key digit and the next state, composed to three levels a lookup. The
    walk starts in the empty prefix's state whatever the bits; the tests hold the keys equal."""
    key = str(device)
    if key not in _TABLES:
        frontier = torch.zeros(1, 3, dtype=torch.int64)    # a prefix per state new at this depth
        maps = _hilbert_digit_maps(frontier, 0)
        state = {maps[0]: 0}
        digit: list[list[int]] = []
        nxt: list[list[int]] = []
        depth = 0
        while len(frontier):
            children = ((frontier[:, None, :] << 1) | _octant_bits(torch.arange(8))).reshape(-1, 3)
            found = []
            for k, child_map in enumerate(_hilbert_digit_maps(children, depth + 1)):
                if child_map not in state:
                    state[child_map] = len(maps)
                    maps.append(child_map)
                    found.append(k)
                if k % 8 == 0:
                    digit.append([maps[len(digit)][8 * o] >> 3 for o in range(8)])
                    nxt.append([])
                nxt[-1].append(state[child_map])
            frontier, depth = children[found], depth + 1
        digit_t, nxt_t = torch.tensor(digit), torch.tensor(nxt)
        s = torch.arange(len(digit)).repeat_interleave(512)
        chunk = torch.arange(512).repeat(len(digit))
        d = torch.zeros_like(s)
        for level in (2, 1, 0):                    # chunk: x0's 3 bits, then x1's, x2's above
            o = sum(((chunk >> (3 * i + level)) & 1) << (2 - i) for i in range(3))
            d = d << 3 | digit_t[s, o]
            s = nxt_t[s, o]
        _TABLES[key] = ((s << 9).to(device), d.to(device))
    return _TABLES[key]


def _hilbert_keys_torch(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """`hilbert_keys` in torch integer ops, on any device: the codes spread to 9-bit chunks of
    three levels (x0's bits lowest), each chunk and the state one table lookup of the next
    state and three key digits. A handful of ops a chunk where the transpose form takes dozens
    a level; on a CPU in passes of `_BLOCK` rows a thread, which stay in cache."""
    nxt, digits = _hilbert_tables(codes.device)
    steps = max(1, -(-bits // 3))
    pad = 3 * steps - bits                         # low zero levels: they change no higher digit
    codes = codes.long()
    n = len(codes)
    out = torch.empty(n, dtype=torch.int64, device=codes.device)
    block = max(1, min(n, _BLOCK * torch.get_num_threads() if codes.device.type == "cpu" else n))
    buffers = [torch.empty(block, *shape, dtype=torch.int64, device=codes.device)
               for shape in ((3,), (3,), (), (), (), ())]
    for a in range(0, n, block):
        rows = codes[a:a + block]
        v, t, m, idx, st, d = (b[:len(rows)] for b in buffers)
        src = rows
        if pad:
            torch.bitwise_left_shift(rows, pad, out=v)
            src = v
        for shift, mask in _SPREAD9:               # v: each code's 3-bit group g at bit 9 g
            torch.bitwise_left_shift(src, shift, out=t)
            torch.bitwise_or(src, t, out=v)
            v &= mask
            src = v
        torch.bitwise_left_shift(v[:, 1], 3, out=m)
        torch.bitwise_left_shift(v[:, 2], 6, out=idx)
        m |= idx
        m |= v[:, 0]                               # m: chunk j of all three codes at bit 9 j
        key = out[a:a + block]
        torch.bitwise_right_shift(m, 9 * (steps - 1), out=idx)
        torch.index_select(digits, 0, idx, out=key)
        for j in range(steps - 2, -1, -1):
            torch.index_select(nxt, 0, idx, out=st)
            torch.bitwise_right_shift(m, 9 * j, out=idx)
            idx &= 511
            idx |= st
            torch.index_select(digits, 0, idx, out=d)
            key <<= 9
            key |= d
        if pad:
            key >>= 3 * pad
    return out


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
