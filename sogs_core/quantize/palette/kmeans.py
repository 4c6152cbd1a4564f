"""The SH palette: k-means over the 3K-dim f_rest vectors, on the GPU when there is one.

Why our own: PyPI `sogs`'s k-means is the slowest stage of its pipeline. By default each splat
searches only the centroids of the coarse cells nearest to its own (`cells`; slightly more
inertia than the exact search): on a GPU with Triton one fused kernel (`triton_search`:
tensor-core tiles, running top-2, no distance matrix in memory), on a CPU a matmul per cell. The
exact searches stay available: method="triton" (every centroid, fused) and "torch" (`exact`).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from sogs_core.model.counting import count_labels
from sogs_core.quantize.palette.cells import CellSearch
from sogs_core.quantize.palette.exact import assign


#: emptied clusters re-seeded per Lloyd step at most (the rest wait for the next step): a bound
#: the device can work with without reading the count of empties back
RESEED_MAX = 1024


def palette_size(n: int) -> int:
    """Number of palette entries for n splats, as splat-transform: min(64, 2^floor(log2(n/1024))) * 1024."""
    p = 1024
    # 2^floor(log2(n / 1024)) computed exactly with integers
    if n >= 1024:
        return min(64, 1 << ((n // 1024).bit_length() - 1)) * p
    shift = 0
    while (n << shift) < 1024:
        shift += 1
    return max(1, p >> shift)


def nearest_fn(x: torch.Tensor, method: str = "auto") -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """A function centroids -> (labels, squared distances) for fixed rows x.

    method: "auto" (= "cells"), "cells" (the two-level search, `cells`: on CUDA one fused
    Triton kernel, on a CPU a matmul per coarse cell; exact below ~64 centroids per cell), "torch"
    (exact, batched matmuls), "triton" (every centroid, tf32 products) or "triton-ieee" (float32
    products)."""
    if method not in ("auto", "torch", "cells", "triton", "triton-ieee"):
        raise ValueError(f"unknown nearest-centroid method {method!r}")
    if method in ("auto", "cells"):
        return CellSearch(x)
    if method != "torch" and x.is_cuda:
        try:
            from sogs_core.quantize.palette import triton_search as pt
        except ImportError:
            if method != "auto":
                raise
        else:
            xf = x.float().contiguous()
            mean = xf.mean(0)
            xp = pt.pad_rows(xf - mean, pt.padded_width(x.shape[1]))
            precision = "ieee" if method == "triton-ieee" else "tf32"
            return lambda c: pt.nearest(xp, xf, c.float(), mean, precision=precision)
    elif method.startswith("triton"):
        raise ValueError("the Triton nearest-centroid search needs rows on a CUDA device")
    return lambda c: assign(x, c)


def kmeans(x: torch.Tensor, k: int, iterations: int = 10, seed: int = 0,
           progress: Optional[Callable[[float], None]] = None,
           method: str = "auto", weights: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Lloyd's k-means of rows of x (N, D) into k clusters; returns (centroids, labels, inertia).

    Seeded with k distinct random rows; an emptied cluster is re-seeded with the row that is
    currently worst served (up to RESEED_MAX a step), so every palette entry stays in use. `method` picks the nearest-
    centroid search (see nearest_fn); the inertia is always summed in float64.

    weights (N,), when given, make it weighted: the seeds drawn in proportion to the weights
    (Gumbel top-k), each centroid the weighted mean of its rows, the worst served row the one
    of largest weighted distance, the inertia weighted. A palette then spends its entries on
    the splats a viewer sees (`quantize.weights.splat_importance`).
    """
    n = len(x)
    k = min(k, n)
    x = x.float()
    gen = torch.Generator(device=x.device).manual_seed(seed)
    if weights is None:
        centroids = x[torch.randperm(n, generator=gen, device=x.device)[:k]].clone()
    else:
        w = weights.to(x.device).float().clamp_min(0.0)
        w = w + 1e-12 * float(w.max().clamp_min(1e-30))        # every row can still be drawn
        u = torch.rand(n, generator=gen, device=x.device).clamp_(1e-12, 1.0 - 1e-7)
        keys = torch.log(w) - torch.log(-torch.log(u))
        centroids = x[torch.topk(keys, k).indices].clone()
    xw = None if weights is None else x * w[:, None]         # the weighted rows, the same every step
    find = nearest_fn(x, method)
    labels, dists = find(centroids)
    reseeds = min(k, n, RESEED_MAX)
    for it in range(iterations):
        if weights is None:
            sums = torch.zeros_like(centroids).index_add_(0, labels, x)
            counts = count_labels(labels, k, x.dtype)
        else:
            sums = torch.zeros_like(centroids).index_add_(0, labels, xw)
            counts = torch.zeros(k, dtype=x.dtype, device=x.device).index_add_(0, labels, w)
        empty = counts == 0
        centroids = torch.where(empty[:, None], centroids, sums / counts.clamp_min(1e-30)[:, None])
        # the j-th emptied centroid takes the j-th worst served row, without reading the
        # number of empties back from the device (a wait per step)
        worst = torch.topk(dists if weights is None else dists * w, reseeds).indices
        rank = torch.cumsum(empty, 0) - 1
        take = empty & (rank < reseeds)
        centroids = torch.where(take[:, None], x[worst[rank.clamp(0, reseeds - 1)]], centroids)
        labels, dists = find(centroids)
        if progress is not None:
            progress((it + 1) / max(iterations, 1))
    inertia = dists.double() if weights is None else dists.double() * w.double()
    return centroids, labels, float(inertia.sum())
