"""What the PlayCanvas engine (2.23) does to splats between the file and the screen, so that our
raster can score what its viewers show (`RenderMetricSettings.engine_model`).

Three roundings, each read from the engine's build (bench/NOTES.md, session 36):
- its compact work buffer (the default `gsplatDataFormat`): every splat's world scale stored as
  8 bits of ln over [-12, 9] (levels 8.6 % apart), its rotation as 11/11/10 bits of
  q.xyz / sqrt(1 + w), its opacity as 8 bits and its view's colour as 11/11/10 bits over [0, 4];
- its CPU sort: integer depth buckets (2^10 to 2^20 of them, by splat count) over the file's
  bounding box along the view axis, finer in the 32nd of the box nearest the camera; splats that
  share a bucket are drawn in file order, the first one in front;
- its RGBA8 framebuffer: splats blended back to front, every blend rounded to a byte.
The metric copies the work buffer by default (`RenderMetricSettings.work_buffer`); all three
together bring our scores of a file within 0.5-2 dB of the engine's on the shared scenes (README,
Quality in the viewer); `--exact` leaves all three out.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from sogs_core.model.work_buffer import COLOUR_LEVELS, COLOUR_MAX, ROTATION_LEVELS, scale_codes, scale_levels

#: the sort's coarse bins along the view axis, and each bin's share of the buckets by its distance
#: (in bins) from the camera's bin: the engine's weight tiers
SORT_BINS = 32
_SORT_TIERS = ((0, 40), (2, 20), (5, 8), (10, 3))
#: the kinds of file whose bounding box the engine's sort spans, as `source_kind` names them
SOURCE_KINDS = ("ply", "compressed_ply", "sog")


def work_buffer_log_scales(log_scales: torch.Tensor) -> torch.Tensor:
    """ln(scale) as the compact work buffer gives it back: rounded to the nearest of 255 levels
    (a scale under 1e-10 becomes 0, which the engine draws as nothing: -inf here)."""
    return scale_levels(scale_codes(log_scales))


def work_buffer_quats(quats: torch.Tensor) -> torch.Tensor:
    """(N, 4) w, x, y, z rotations as the compact work buffer gives them back (unit, w >= 0)."""
    q = quats.float()
    q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-30)
    q = torch.where(q[:, :1] < 0, -q, q)
    levels = torch.tensor(ROTATION_LEVELS, device=q.device)
    p = q[:, 1:] / torch.sqrt(1.0 + q[:, :1])
    p = torch.minimum(torch.floor((p * 0.5 + 0.5) * levels + 0.5).clamp_min(0.0), levels) / levels * 2.0 - 1.0
    d = (p * p).sum(1, keepdim=True)
    return torch.cat([1.0 - d, torch.sqrt((2.0 - d).clamp_min(0.0)) * p], 1)


def work_buffer_alpha(alpha: torch.Tensor) -> torch.Tensor:
    """Peak opacity rounded to a byte."""
    return torch.floor(alpha.clamp(0.0, 1.0) * 255.0 + 0.5) / 255.0


def work_buffer_colours(rgb: torch.Tensor) -> torch.Tensor:
    """A view's (N, 3) colours rounded as the work buffer stores them (11/11/10 bits over [0, 4])."""
    steps = torch.tensor(COLOUR_LEVELS, device=rgb.device) / COLOUR_MAX
    return torch.floor(rgb.clamp(0.0, COLOUR_MAX) * steps + 0.5) / steps


def source_kind(path: str) -> str:
    """Which of SOURCE_KINDS the engine makes of a file's bounding box: a PLY's spans the centres
    +- twice each splat's largest scale, a compressed PLY's its chunks' boxes +- each chunk's
    largest scale, a SOG's (and any other file's) its centres."""
    name = os.path.basename(path.rstrip("/")).lower()
    if name.endswith(".compressed.ply"):
        return "compressed_ply"
    if name.endswith(".ply"):
        return "ply"
    return "sog"


@dataclass(frozen=True)
class SortBox:
    """What the engine's sort knows of one file: its bounding box and its splat count."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    count: int

    @classmethod
    def of(cls, means: np.ndarray, log_scales: np.ndarray, kind: str) -> "SortBox":
        """The box the engine computes for a file of `kind` holding these splats."""
        if kind not in SOURCE_KINDS:
            raise ValueError(f"unknown source kind {kind!r} (known: {', '.join(SOURCE_KINDS)})")
        m = np.asarray(means, np.float64)
        if not len(m):
            return cls((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), 0)
        if kind == "ply":
            pad = 2.0 * np.exp(np.asarray(log_scales, np.float64).max(1))[:, None]
            lo, hi = (m - pad).min(0), (m + pad).max(0)
        elif kind == "compressed_ply":
            chunk = np.arange(len(m)) // 256
            n = int(chunk[-1]) + 1
            big = np.full(n, -np.inf)
            np.maximum.at(big, chunk, np.asarray(log_scales, np.float64).max(1))
            c_lo, c_hi = np.full((n, 3), np.inf), np.full((n, 3), -np.inf)
            np.minimum.at(c_lo, chunk, m)
            np.maximum.at(c_hi, chunk, m)
            pad = np.exp(big)[:, None]
            lo, hi = (c_lo - pad).min(0), (c_hi + pad).max(0)
        else:
            lo, hi = m.min(0), m.max(0)
        return cls(tuple(float(x) for x in lo), tuple(float(x) for x in hi), len(m))

    def buckets(self) -> int:
        """The sort's bucket count: 2^bits + 1, bits from the splat count."""
        bits = max(10, min(20, round(math.log2(max(self.count, 1) / 4))))
        return 2 ** bits + 1

    def bin_table(self, camera_bin: int) -> tuple[list[float], list[float]]:
        """(first bucket, buckets) of each of the SORT_BINS bins, plus the end bin, given which
        bin the camera is in: the engine's `GSplatSortBinWeights.compute`."""
        weight = [next((w for far, w in _SORT_TIERS if abs(i - camera_bin) <= far), 1) for i in range(SORT_BINS)]
        total, buckets = sum(weight), self.buckets()
        base, size, acc = [], [], 0
        for w in weight:
            d = max(1, math.floor(w / total * buckets))
            base.append(float(acc))
            size.append(float(d))
            acc += d
        if acc > buckets:
            size[-1] = float(max(1, size[-1] - (acc - buckets)))
        return base + [base[-1] + size[-1]], size + [0.0]

    def draw_keys(self, depth: torch.Tensor, index: torch.Tensor, position: torch.Tensor,
                  forward: torch.Tensor) -> torch.Tensor:
        """float64 keys whose ascending order is the engine's drawing order read front to back,
        for splats at view depths `depth` with file indices `index`, seen from `position` looking
        along `forward` (unit): the bucket, nearest first, then the file index."""
        corners = torch.tensor([[x, y, z] for x in (self.lo[0], self.hi[0]) for y in (self.lo[1], self.hi[1])
                                for z in (self.lo[2], self.hi[2])], dtype=torch.float64)
        along = (corners - position.detach().double().cpu()) @ forward.detach().double().cpu()
        # the engine's distance is along the camera's +Z (backwards): -depth
        lo_dist, hi_dist = -float(along.max()), -float(along.min())
        span = max(hi_dist - lo_dist, 1e-30)
        camera_bin = max(0, min(SORT_BINS - 1, math.floor(-lo_dist / span * SORT_BINS)))
        base, size = (torch.tensor(v, dtype=torch.float64, device=depth.device) for v in self.bin_table(camera_bin))
        d = ((-depth.double()) - lo_dist) * (SORT_BINS / span)
        b = d.floor().clamp(0, SORT_BINS).long()
        bucket = torch.floor(base[b] + size[b] * (d - b)).clamp_min(0.0)
        return -bucket * (self.count + 1) + index.double()


def composite_rgba8(p: dict[str, torch.Tensor], width: int, height: int, fragments: Callable,
                    chunks: Sequence[slice], background: Sequence[float] = (0.0, 0.0, 0.0)) -> torch.Tensor:
    """(H*W, 3) levels 0..255 of the projected splats `p` (front to back) blended back to front into
    an RGBA8 framebuffer cleared to `background`: each fragment's colour x alpha clamped to 1,
    every blend rounded to a byte. `fragments(sl)` gives (pixel, alpha, splat) of the splats `sl`;
    `chunks` are runs of splats, the farthest run first, and inside a run one layer of every
    pixel goes at a time, so memory stays bounded by the largest run's fragments."""
    n = len(p["u"])
    clear = torch.tensor([round(min(max(c, 0.0), 1.0) * 255.0) for c in background], dtype=torch.float64)
    dst = clear.to(p["u"].device).repeat(width * height, 1)
    for sl in chunks:
        pix, alpha, who = fragments(sl)
        if not len(pix):
            continue
        # back to front inside each pixel: the farther splat (larger index) first
        order = torch.argsort(pix.long() * (n + 1) + (n - who.long()))
        pix, alpha, who = pix.index_select(0, order), alpha.index_select(0, order).double(), who.index_select(0, order)
        _, runs = torch.unique_consecutive(pix, return_counts=True)
        layer = torch.arange(len(pix), device=pix.device) - torch.repeat_interleave(torch.cumsum(runs, 0) - runs, runs)
        src = (p["rgb"].index_select(0, who).double() * alpha[:, None]).clamp(0.0, 1.0) * 255.0
        by_layer = torch.argsort(layer, stable=True)
        ends = torch.searchsorted(layer.index_select(0, by_layer),
                                  torch.arange(int(layer.max()) + 2, device=pix.device)).tolist()
        for a, b in zip(ends[:-1], ends[1:]):
            rows = by_layer[a:b]
            at = pix.index_select(0, rows)
            blended = src.index_select(0, rows) + dst.index_select(0, at) * (1.0 - alpha.index_select(0, rows))[:, None]
            dst.index_copy_(0, at, torch.floor(blended + 0.5).clamp(0.0, 255.0))
    return dst


__all__ = ["SOURCE_KINDS", "SortBox", "composite_rgba8", "source_kind", "work_buffer_alpha",
           "work_buffer_colours", "work_buffer_log_scales", "work_buffer_quats"]
