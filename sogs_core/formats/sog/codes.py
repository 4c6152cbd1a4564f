"""The codes SOG v2 stores and their exact inverses (the decoder uses the same functions).

Each `encode_*` maps float attributes to the bytes stored in the images; each `decode_*` is the
reader's inverse from the format brief; `QuantizedScene` holds every code of a scene. Keeping
both sides in one module makes the round-trip bound of every attribute a property of this file.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import torch

from sogs_core.model.device import numpy_tensor
from sogs_core.model.splats import SH_COEFFS_PER_CHANNEL, Splats

SQRT2 = math.sqrt(2.0)
#: scenes from this many splats gather their codes on a CUDA device (`QuantizedScene.take`)
GPU_TAKE_MIN = 1 << 16


# ---- positions: 16-bit, log-transformed -------------------------------------------------------
def log_transform(v: torch.Tensor) -> torch.Tensor:
    return torch.sign(v) * torch.log1p(v.abs())


def encode_means(means: torch.Tensor, drop_bits: int = 0) -> tuple[torch.Tensor, list[float], list[float]]:
    """(N, 3) positions -> (N, 3) int32 codes in 0..65535, per-axis mins and maxs of t(v).

    drop_bits > 0 rounds each code to the nearest multiple of 2^drop_bits (a coarser grid whose
    low bits cost the encoder little; `quantize.quality`)."""
    t = log_transform(means.double())
    lo, hi = t.min(0).values, t.max(0).values
    rng = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    step = float(1 << drop_bits)
    q = (torch.round(65535.0 * (t - lo) / rng / step) * step).clamp(0, 65535).to(torch.int32)
    return q, lo.tolist(), hi.tolist()


def _numpy_or_torch(decode):
    """Let a torch decoder take numpy arrays too (and give numpy back): the decoder of files and
    the compressor's on-device fidelity report share one implementation of each inverse."""
    @functools.wraps(decode)
    def wrapper(codes, *args):
        if isinstance(codes, np.ndarray):
            return decode(numpy_tensor(codes), *args).numpy()
        return decode(codes, *args)
    return wrapper


#: rows from which a decoder evaluates its formula once per possible code and gathers
#: (`decode_means`, `decode_quats`, `decode_opacity`): the same floats for a fraction of the
#: transcendental work where rows outnumber codes (the fidelity report decodes every file)
DECODE_TABLE_MIN_ROWS = 1 << 17


def _codes_within(codes: torch.Tensor, top: int) -> bool:
    """Every code is an index into a table of `top` + 1 entries (a code out of range, from a
    damaged file, keeps the formula's own answer instead of an index error); bytes always are
    where the table holds 256, without a pass over them."""
    if codes.dtype == torch.uint8 and top >= 255:
        return True
    return len(codes) > 0 and int(codes.min()) >= 0 and int(codes.max()) <= top


def _means_from_codes(q: torch.Tensor, lo: torch.Tensor, rng: torch.Tensor) -> torch.Tensor:
    t = lo + rng * (q.double() / 65535.0)
    return (torch.sign(t) * torch.expm1(t.abs())).float()


@_numpy_or_torch
def decode_means(q: torch.Tensor, mins, maxs) -> torch.Tensor:
    """(N, 3) 16-bit codes -> float32 positions (the format's inverse log transform); for many
    rows, each axis's 65,536 positions once, then gathered."""
    lo = torch.tensor(mins, dtype=torch.float64, device=q.device)
    hi = torch.tensor(maxs, dtype=torch.float64, device=q.device)
    rng = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    if len(q) < DECODE_TABLE_MIN_ROWS or not _codes_within(q, 65535):
        return _means_from_codes(q, lo, rng)
    every = torch.arange(65536, dtype=torch.int32, device=q.device)[:, None].repeat(1, 3)
    table = _means_from_codes(every, lo, rng).T.contiguous()          # (3, 65536)
    codes = q.long()
    return torch.stack([table[k].index_select(0, codes[:, k]) for k in range(3)], 1)


# ---- rotations: smallest three ---------------------------------------------------------------
_OTHERS = torch.tensor([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
#: per largest component m, where each of w, x, y, z sits among (the three others, the largest)
_PLACES = torch.tensor([[3, 0, 1, 2], [0, 3, 1, 2], [0, 1, 3, 2], [0, 1, 2, 3]])


def encode_quats(quats: torch.Tensor, step: int = 1) -> torch.Tensor:
    """(N, 4) w,x,y,z -> (N, 4) uint8: three components in RGB, 252 + index of the largest in A.

    step > 1 rounds each code to the nearest multiple of `step` (a coarser grid; `quantize.quality`)."""
    q = quats.double()
    q = q / q.norm(dim=1, keepdim=True)
    m = q.abs().argmax(1)
    largest = q.gather(1, m[:, None])
    q = q * torch.where(largest < 0, -1.0, 1.0)
    others = q.gather(1, _OTHERS.to(q.device)[m])
    b = (torch.round(255.0 * (others * SQRT2 * 0.5 + 0.5) / step) * step).clamp(0, 255)
    return torch.cat([b, (252 + m)[:, None].double()], 1).to(torch.uint8)


def _quat_components(b: torch.Tensor) -> torch.Tensor:
    return (b.double() / 255.0 * 2.0 - 1.0) / SQRT2


@_numpy_or_torch
def decode_quats(b: torch.Tensor) -> torch.Tensor:
    """(N, 4) uint8 -> (N, 4) unit quaternions w,x,y,z (tag outside 252..255 -> identity); for
    many rows the three stored components are looked up in a table of the 256 bytes' values."""
    if len(b) < DECODE_TABLE_MIN_ROWS or not _codes_within(b[:, :3], 255):
        c = _quat_components(b[:, :3])
    else:
        table = _quat_components(torch.arange(256, device=b.device))
        c = table.index_select(0, b[:, :3].reshape(-1).long()).view(len(b), 3)
    largest = torch.sqrt(torch.clamp(1.0 - (c * c).sum(1), min=0.0))
    tag = b[:, 3].long() - 252
    valid = (tag >= 0) & (tag <= 3)
    # one gather puts the three stored components and the largest where the tag says
    out = torch.cat([c, largest[:, None]], 1).gather(1, _PLACES.to(b.device).index_select(0, tag.clamp(0, 3)))
    identity = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64, device=b.device)
    return torch.where(valid[:, None], out, identity).float()


# ---- opacity: one byte after the sigmoid -----------------------------------------------------
#: how close to a whole byte an opacity must read to count as stored on the 8-bit grid already
OPACITY_GRID_TOLERANCE = 2e-3


def opacity_on_grid(logits: torch.Tensor) -> torch.Tensor:
    """(N,) bool: the opacity is a whole byte already (a decoded SOG, a compressed PLY)."""
    v = torch.sigmoid(logits.double()) * 255.0
    return (v - torch.round(v)).abs() <= OPACITY_GRID_TOLERANCE


def encode_opacity(logits: torch.Tensor, drop_bits: int = 0,
                   on_grid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Logits -> one byte after the sigmoid. drop_bits > 0 rounds to a multiple of 2^drop_bits,
    except where the input's opacity is a whole byte already (`on_grid`, by default
    `opacity_on_grid(logits)`): rounding that again would add an error the input does not have
    (`quantize.quality`)."""
    v = torch.sigmoid(logits.double()) * 255.0
    nearest = torch.round(v)
    if drop_bits > 0:
        step = float(1 << drop_bits)
        coarse = torch.round(v / step) * step
        on_grid = opacity_on_grid(logits) if on_grid is None else on_grid
        nearest = torch.where(on_grid, nearest, coarse)
    return nearest.clamp(0, 255).to(torch.uint8)


def _logits_of_bytes(a: torch.Tensor) -> torch.Tensor:
    p = torch.clamp(a.double() / 255.0, 1e-6, 1.0 - 1e-6)
    return torch.log(p / (1.0 - p)).float()


@_numpy_or_torch
def decode_opacity(a: torch.Tensor) -> torch.Tensor:
    """Opacity bytes -> logits (A/255 clamped to [1e-6, 1 - 1e-6]); for many rows, the 256
    bytes' logits looked up."""
    if len(a) < DECODE_TABLE_MIN_ROWS or not _codes_within(a, 255):
        return _logits_of_bytes(a)
    return _logits_of_bytes(torch.arange(256, device=a.device)).index_select(0, a.reshape(-1).long()).view(a.shape)


# ---- the whole scene -------------------------------------------------------------------------
@dataclass
class QuantizedScene:
    """Everything the images hold, per splat in the final (sorted) order, plus the codebooks."""

    count: int
    means_q: np.ndarray            # (N, 3) int32, 0..65535
    means_mins: list
    means_maxs: list
    quats_b: np.ndarray            # (N, 4) uint8
    scales_idx: np.ndarray         # (N, 3) uint8
    scales_codebook: np.ndarray    # (256,) float32
    sh0_idx: np.ndarray            # (N, 3) uint8
    sh0_codebook: np.ndarray       # (256,) float32
    opacity_b: np.ndarray          # (N,) uint8
    sh_bands: int = 0
    sh_labels: Optional[np.ndarray] = None        # (N,) int64 palette index
    sh_palette_idx: Optional[np.ndarray] = None   # (P, 3, K) uint8 codebook indices
    sh_codebook: Optional[np.ndarray] = None      # (256,) float32
    sh_palette_count: int = 0
    sh_inertia: float = 0.0

    def take(self, order: np.ndarray, device: Optional[torch.device] = None) -> "QuantizedScene":
        """The same scene with splat i of the result = splat order[i] of this one (codebooks and
        palette unchanged): the codes are order-free, so the order is chosen after quantizing.
        On a CUDA `device` the gathers run there: for large scenes a round trip of the codes
        costs less than numpy's gathers (bench/NOTES.md)."""
        if device is not None and device.type == "cuda" and len(order) >= GPU_TAKE_MIN:
            index = torch.from_numpy(np.ascontiguousarray(order)).to(device)

            def take(a: Optional[np.ndarray]) -> Optional[np.ndarray]:
                return None if a is None else numpy_tensor(a).to(device)[index].cpu().numpy()
        else:
            def take(a: Optional[np.ndarray]) -> Optional[np.ndarray]:
                return None if a is None else np.take(a, order, axis=0)   # faster than a[order] on (N, 3)

        return replace(self, count=len(order), means_q=take(self.means_q), quats_b=take(self.quats_b),
                       scales_idx=take(self.scales_idx), sh0_idx=take(self.sh0_idx),
                       opacity_b=take(self.opacity_b), sh_labels=take(self.sh_labels))

    def with_sh_bands(self, bands: int) -> "QuantizedScene":
        """The same scene keeping SH bands up to `bands` (never adds any): the palette's
        coefficients of the dropped bands are cut, labels and codebook stay."""
        if bands >= self.sh_bands:
            return self
        if bands == 0:
            return replace(self, sh_bands=0, sh_labels=None, sh_palette_idx=None, sh_codebook=None,
                           sh_palette_count=0, sh_inertia=0.0)
        k = SH_COEFFS_PER_CHANNEL[bands]
        return replace(self, sh_bands=bands, sh_palette_idx=np.ascontiguousarray(self.sh_palette_idx[:, :, :k]))


def lookup(table: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """table[codes] for integer codes of any shape (rows of `table` for a table of rows), by one
    index_select: the same values as indexing, at about half its time on a CPU."""
    return table.index_select(0, codes.reshape(-1).long()).view(*codes.shape, *table.shape[1:])


def dequantize_tensors(q: QuantizedScene, device: torch.device) -> dict[str, torch.Tensor]:
    """What a decoder will read back from `q` (no image round trip), as float32 tensors on
    `device` keyed like `Splats`' fields: the compressor's fidelity report runs on its device."""
    def dev(a: np.ndarray) -> torch.Tensor:
        return numpy_tensor(a).to(device)

    out = {"means": decode_means(dev(q.means_q), q.means_mins, q.means_maxs),
           "quats": decode_quats(dev(q.quats_b)),
           "log_scales": lookup(dev(q.scales_codebook), dev(q.scales_idx)),
           "f_dc": lookup(dev(q.sh0_codebook), dev(q.sh0_idx)),
           "opacity": decode_opacity(dev(q.opacity_b)),
           "f_rest": torch.zeros(q.count, 0, device=device)}
    if q.sh_bands:
        palette = lookup(dev(q.sh_codebook), dev(q.sh_palette_idx))       # (P, 3, K) values
        out["f_rest"] = lookup(palette, dev(q.sh_labels)).reshape(q.count, -1)
    return out


def dequantize(q: QuantizedScene) -> Splats:
    """What a decoder will read back from `q`, as numpy `Splats` (see dequantize_tensors)."""
    t = dequantize_tensors(q, torch.device("cpu"))
    return Splats(**{k: v.numpy() for k, v in t.items()})
