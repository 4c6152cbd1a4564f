"""Fitting the SH palette: k-means centroids over the f_rest rows, their values through one
256-entry codebook, each splat's label; and attaching it to a scene's codes in any order."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import torch

from sogs_core.formats.sog.codes import QuantizedScene
from sogs_core.model.splats import SH_COEFFS_PER_CHANNEL
from sogs_core.quantize.codebook import kmeans_1d
from sogs_core.quantize.weights import TAIL_WEIGHT
from sogs_core.quantize.palette.kmeans import kmeans, palette_size


@dataclass
class Palette:
    """The SH palette of a scene: k-means centroids (as codebook indices), each splat's label in
    the order of the rows it was fitted on, and the 256-entry codebook of the centroid values.
    It does not depend on the splat order, so it can be fitted while the order is being chosen
    and attached afterwards (`with_palette`)."""

    bands: int
    labels: np.ndarray            # (N,) int64, one per fitted row
    palette_idx: np.ndarray       # (P, 3, K) uint8
    codebook: np.ndarray          # (256,) float32
    count: int
    inertia: float
    seconds: float                # the k-means alone (the 'cluster' stage)


def fit_palette(f_rest: torch.Tensor, kmeans_iterations: int = 10, seed: int = 0,
                progress=None, weights: Optional[torch.Tensor] = None,
                size: Optional[int] = None) -> Optional[Palette]:
    """The SH palette of f_rest (N, 3K), or None when there is no SH (K = 0).

    weights (N,) weigh the k-means and its centroids' codebook (each centroid by the weight of
    its splats, plus the codebooks' density weight): entries and levels go where a viewer sees
    them. size: palette entries (default `palette_size`, splat-transform's rule)."""
    k = f_rest.shape[1] // 3
    if not k:
        return None
    p = min(size or palette_size(len(f_rest)), len(f_rest))
    t0 = time.perf_counter()
    centroids, labels, inertia = kmeans(f_rest.float(), p, kmeans_iterations, seed, progress, weights=weights)
    if f_rest.is_cuda:
        torch.cuda.synchronize(f_rest.device)
    seconds = time.perf_counter() - t0
    if len(centroids) < p:  # fewer splats than palette entries cannot happen (p <= n), but stay safe
        centroids = torch.cat([centroids, centroids[-1:].expand(p - len(centroids), -1)])
    if weights is None:
        ccb, cidx = kmeans_1d(centroids)
    else:
        member = torch.zeros(p, dtype=torch.float64, device=centroids.device).index_add_(
            0, labels, weights.to(centroids.device).double())
        ccb, cidx = kmeans_1d(centroids, density_alpha=TAIL_WEIGHT,
                              importance=member[:, None].expand_as(centroids).float())
    return Palette(bands=SH_COEFFS_PER_CHANNEL.index(k), labels=labels.cpu().numpy(),
                   palette_idx=cidx.reshape(p, 3, k).cpu().numpy(), codebook=ccb.cpu().numpy(),
                   count=p, inertia=inertia, seconds=seconds)


def with_palette(q: QuantizedScene, palette: Optional[Palette], order: Optional[np.ndarray] = None) -> QuantizedScene:
    """q with `palette` attached; `order`: q's splat i is row order[i] of the rows the palette was
    fitted on (None: the same order). q itself when there is no palette."""
    if palette is None:
        return q
    labels = palette.labels if order is None else np.take(palette.labels, order)
    return replace(q, sh_bands=palette.bands, sh_labels=labels, sh_palette_idx=palette.palette_idx,
                   sh_codebook=palette.codebook, sh_palette_count=palette.count, sh_inertia=palette.inertia)


def add_palette(q: QuantizedScene, f_rest: torch.Tensor, kmeans_iterations: int = 10, seed: int = 0,
                progress=None, timings: Optional[dict] = None, weights: Optional[torch.Tensor] = None,
                size: Optional[int] = None) -> QuantizedScene:
    """q with the SH palette of f_rest (rows in q's splat order): k-means centroids, each splat's
    label, and the 256-entry codebook of the centroid values. q itself when there is no SH.

    timings, when given, receives 'cluster': the seconds of the k-means."""
    palette = fit_palette(f_rest, kmeans_iterations, seed, progress, weights, size)
    if timings is not None:
        timings["cluster"] = palette.seconds if palette is not None else 0.0
    return with_palette(q, palette)
