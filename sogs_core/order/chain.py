"""The default order: a Hilbert curve whose splats are re-chained inside chunks for bytes.

Why (bench/NOTES.md, on the real scenes of ../shared/scenes): the images of
a SOG are coded row by row by lossless WebP, which predicts a texel mostly from its left
neighbour. Along a curve order the high position bytes (`means_u`) change rarely, which is why a
plain Morton order beats PLAS there; but the other attributes (quats, scales, colour, opacity)
look like noise from texel to texel, and they are most of the bytes. PLAS makes them smooth and
loses more on `means_u` than it gains. Here each run of `chunk` consecutive curve splats (a
small region of space) is re-chained greedily: start at the chunk's first splat, then always
step to the unvisited splat of the chunk whose stored bytes are nearest, with a cost that
approximates WebP's: log2(1 + |difference|) per byte channel (WebP's residuals wrap at 256; the
cost does not, which changed the five real scenes' bytes by 0.01 % for a fifth of a step's
time), the high position bytes weighted `means_u_weight` times, the low position bytes
not at all (they are incompressible in any order). Where neighbouring splats share attributes
this beats Morton. The log2 is Mitchell's piecewise-linear one (`bit_cost`), read off the float's
bits: it writes the same bytes within 0.02 % and costs a fraction of a true log2 on a CPU, where
it was most of the walk's time (bench/NOTES.md, session 23).

A chunk is independent of the others, so all chunks take their j-th step together: `chunk`
sequential steps of batched tensor ops on a CPU; on a GPU one Triton program per chunk walks
all its steps in registers (`chain_triton`).
"""
from __future__ import annotations


import numpy as np
import torch

from sogs_core.formats.sog.codes import QuantizedScene
from sogs_core.order.curves import Y_TOP, curve_order
from sogs_core.settings import ChainConfig


COMPACT_EVERY = 16  # steps of the batched walk between two compactions of the unvisited splats
#: splats re-chained together where ChainConfig.chunk is 0: a larger chunk offers each step more
#: candidates (fewer bytes: 512 writes the five real scenes 0.9 % smaller than 128, 1024 1.1 %)
#: for time linear in it, which the fused walk on a GPU hardly shows (bench/NOTES.md, session 23)
CHUNK_CUDA = 1024
CHUNK_CPU = 512


def byte_columns(q: QuantizedScene, means_u_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) uint8 columns of the stored per-splat bytes that the chain cost looks at, and
    (C,) weights: means_u (3), quats (4), scales (3), sh0 colour (3) and opacity."""
    cols = np.concatenate([(q.means_q >> 8).astype(np.uint8), q.quats_b, q.scales_idx, q.sh0_idx,
                           q.opacity_b[:, None]], 1)          # whole arrays, not 14 strided columns
    weights = np.ones(cols.shape[1], np.float32)
    weights[:3] = means_u_weight
    return cols, weights


def greedy_chain(seq: torch.Tensor, cols: torch.Tensor, weights: torch.Tensor, chunk: int,
                 method: str = "auto") -> torch.Tensor:
    """Re-chain `seq` (N,) splat indices in chunks of `chunk`; returns the new sequence.

    cols: (N, C) uint8 bytes per splat (indexed by splat), weights (C,) float32, all on one
    device. The last N mod chunk splats keep their order. method: "auto" (the fused Triton
    kernel, `chain_triton`, on CUDA when Triton imports and the chunk is a power of two; else
    torch ops), "torch" or "triton"."""
    if method not in ("auto", "torch", "triton"):
        raise ValueError(f"unknown chain method {method!r} (auto, torch, triton)")
    n = len(seq)
    m = n // chunk
    if m == 0 or chunk < 3:
        return seq
    dev = seq.device
    members = seq[: m * chunk].view(m, chunk)
    x = cols[members].to(torch.int16)                          # (m, K, C)
    w = weights.to(dev, torch.float32)
    if method != "torch" and dev.type == "cuda" and chunk & (chunk - 1) == 0:
        try:
            from sogs_core.order.chain_triton import chain_paths
        except ImportError:
            if method == "triton":
                raise
        else:
            out = seq.clone()
            out[: m * chunk] = members.gather(1, chain_paths(x, w)).reshape(-1)
            return out
    elif method == "triton":
        raise ValueError("the Triton chain needs bytes on a CUDA device and a power-of-two chunk")
    path = _walk_chunks(x, w)
    out = seq.clone()
    out[: m * chunk] = members.gather(1, path).reshape(-1)
    return out


def bit_cost(v: torch.Tensor) -> torch.Tensor:
    """Mitchell's log2(1 + v) for float32 integers v >= 0: the exponent of 1 + v plus its
    mantissa's fraction, exact at powers of two and linear between them (at most 0.086 below the
    true log2). The chain's cost per byte channel, on a CPU (`_walk_chunks`) and a GPU
    (`chain_triton`) alike."""
    bits = (v.float() + 1.0).view(torch.int32) - (127 << 23)
    return bits.float() * (1.0 / (1 << 23))


#: bytes are walked as float32 multiples of this, the smallest normal float: the bits of
#: |a - b| + TINY are then (1 + e) << 23 | mantissa for 1 + |a - b| = 2^e (1 + mantissa), that is
#: `bit_cost` plus one, scaled by 2^23, as an int32 that sums without overflow
TINY = 2.0 ** -126
#: the largest bits of one channel (1 + |difference| = 256) and of one walk cost in int32
_CHANNEL_BITS_MAX = 9 << 23
_INT32_MAX = (1 << 31) - 1


def _walk_chunks(x: torch.Tensor, w: torch.Tensor, compact_every: int = COMPACT_EVERY) -> torch.Tensor:
    """The greedy walk of every chunk in batched tensor ops: x (m, K, C) bytes (0-255, any dtype),
    w (C,); returns (m, K) positions in walk order, each path starting at position 0.

    Why this shape (bench/NOTES.md): a step costs one pass over the unvisited splats' bytes,
    held channel-major (C, m, K), so every `compact_every` steps the visited ones are dropped
    (the survivors keep their relative order, hence argmin's first-minimum tie-break and the
    path are those of a walk over all K). A step is three float passes and integer sums: the
    bytes are held as multiples of `TINY`, so |difference| + TINY's bits, read as int32, are
    each channel's `bit_cost` + 1 in units of 2^-23, exactly; they are summed over the channels
    as integers (the same +1 for every candidate, so the same argmin and ties as the exact cost)
    and the channels of heavier weight added again. Integer weights whose cost fits int32 stay
    in int32; others combine the per-weight sums in float64. No float-to-int conversion pass:
    on a CPU the walk is memory-bound, and this halves it against matmul over converted bits."""
    m, k, c = x.shape
    dev = x.device
    x = (x.permute(2, 0, 1).to(torch.float32) * TINY).contiguous()       # (C, m, K)
    extra = _extra_weights(w)
    exact_int = all(float(v).is_integer() for v, _ in extra) and bool((w >= 0).all()) and \
        max(c, float(w.sum())) * _CHANNEL_BITS_MAX <= _INT32_MAX
    top = _INT32_MAX if exact_int else float("inf")
    rows = torch.arange(m, device=dev)
    slot = torch.arange(k, device=dev).expand(m, k).contiguous()     # chunk position of each column
    taken = torch.zeros(m, k, dtype=torch.bool, device=dev)
    path = torch.empty(m, k, dtype=torch.long, device=dev)
    path[:, 0] = 0
    taken[:, 0] = True
    here = x[:, :, 0].clone()                                      # (C, m)
    d = torch.empty_like(x)
    for j in range(1, k):
        if j % compact_every == 0:                                  # drop the j visited columns
            keep = (~taken).nonzero()[:, 1].view(m, k - j)         # row-major: each row's in order
            x = x.gather(2, keep[None].expand(c, -1, -1))
            slot, taken = slot.gather(1, keep), taken.gather(1, keep)
            d = torch.empty_like(x)
        torch.sub(x, here[:, :, None], out=d)
        bits = d.abs_().add_(TINY).view(torch.int32)                 # bit_cost + 1, times 2^23
        cost = bits.sum(0, dtype=torch.int32)
        if exact_int:
            for weight, channels in extra:
                cost.add_(bits[channels].sum(0, dtype=torch.int32), alpha=int(weight))
        elif extra:
            cost = cost.double()
            for weight, channels in extra:
                cost.add_(bits[channels].sum(0, dtype=torch.int32).double(), alpha=weight)
        width = cost.shape[1]
        at = cost.masked_fill_(taken, top).argmin(1) + rows * width   # flat: index_select, not indexing
        path[:, j] = slot.view(-1).index_select(0, at)
        here = x.view(c, -1).index_select(1, at)
        taken.view(-1).index_fill_(0, at, True)
    return path


def _extra_weights(w: torch.Tensor) -> list[tuple[float, "slice | torch.Tensor"]]:
    """(weight - 1, channels) for every weight other than 1: the walk sums every channel once and
    these again; channels as a slice where they are consecutive (byte_columns puts means_u first)."""
    wl = w.tolist()
    out = []
    for value in sorted(set(wl)):
        if value == 1.0:
            continue
        idx = [i for i, v in enumerate(wl) if v == value]
        channels = slice(idx[0], idx[-1] + 1) if idx == list(range(idx[0], idx[-1] + 1)) \
            else torch.tensor(idx, device=w.device)
        out.append((value - 1.0, channels))
    return out


def chain_chunk(config: ChainConfig, device: torch.device) -> int:
    """Splats re-chained together: config.chunk, or the device's default where it is 0."""
    return config.chunk or (CHUNK_CUDA if device.type == "cuda" else CHUNK_CPU)


def chain_orders(q: QuantizedScene, means: torch.Tensor, config: ChainConfig) -> list[torch.Tensor]:
    """The candidate orders: the chained Hilbert order first, then (config.choose) Morton with y
    in the highest bit of each triple (`curves.Y_TOP`): the chain does not beat Morton on the
    real SH scene (Morton beats plain Hilbert there), and the y-first interleave beats the
    x-first one there (bench/NOTES.md); and the input order itself where it is as local as a
    curve (`input_is_local`: structured positions)."""
    cols, weights = byte_columns(q, config.means_u_weight)
    dev = means.device
    chunk = chain_chunk(config, dev)
    chained = greedy_chain(curve_order(means, "hilbert"), torch.from_numpy(cols).to(dev),
                           torch.from_numpy(weights).to(dev), chunk)
    if not config.choose:
        return [chained]
    morton = curve_order(means, "morton", axes=Y_TOP)
    cands = [chained, morton]
    if input_is_local(q.means_q, morton.cpu().numpy()):
        cands.append(torch.arange(q.count, device=dev))
    return cands


#: the input order is tried too when its consecutive splats' position codes differ by at most
#: this many more bits (mean log2(1 + |difference|) per axis) than along the Morton order
INPUT_LOCALITY_BITS = 0.5


def input_is_local(means_q: np.ndarray, morton: np.ndarray) -> bool:
    """Whether the input order keeps neighbouring splats together about as well as a curve: a
    generator that writes splats on a lattice or along a surface (structured positions), or a
    file already sorted along a curve, does, and then its order may encode smaller than ours;
    a trained scene's order is noise (5-6 bits a step worse on the shared real_float scenes)
    and is not worth a candidate's encode. Bits, not distances: WebP pays for a residual by its
    logarithm, and a few long jumps (a lattice's row changes) cost little."""
    if len(means_q) < 2:
        return False

    def bits(m: np.ndarray) -> float:
        return float(np.log2(1.0 + np.abs(np.diff(m.astype(np.int64), axis=0))).mean())

    return bits(means_q) <= bits(means_q[morton]) + INPUT_LOCALITY_BITS
