"""A two-level nearest-centroid search for the SH palette on a CPU (an inverted file).

Why: splat-transform's palette has up to 65536 entries, almost one per splat in small scenes
(16384 for 20,000 splats), and the brute-force search costs N x P x D per Lloyd step: 9-15 s of
the 10 s a 20k-splat SH3 scene took on two CPU cores, and minutes for 100k splats. Here the
centroids are grouped into C ~ sqrt(P) coarse cells (a short k-means over the centroids); each
splat goes to its nearest cell, and the splats of a cell search only the centroids of the
`probe` cells nearest to that cell: about probe / C of the work, as dense matmuls per cell.

Approximate: a splat whose nearest centroid lies outside its cell's probed neighbourhood gets
the nearest one inside it. 10 Lloyd steps on the shared synthetic SH3 scenes, 2 CPU cores
(bench/NOTES.md, session 5), inertia against the exact search from the same start: 20k splats
(P = 16384) probe 8 / 16 / 32: +1.8 % / +0.25 % / 0.0 % in 1.1 / 1.6 / 2.3 s (exact 8.7 s);
50k (P = 32768): +3.9 % / +0.31 % / 0.0 % in 3.0 / 5.4 / 10.1 s (exact 44.8 s). Default probe
16; `tests/test_quantize.py` holds it within 0.5 %. Distances are exact for the labels returned.
"""
from __future__ import annotations

import math

import torch

from .palette import assign


def coarse_cells(centroids: torch.Tensor, cells: int, iterations: int = 4) -> torch.Tensor:
    """Centres of `cells` coarse cells over the centroids: Lloyd from an even stride of them."""
    centres = centroids[torch.linspace(0, len(centroids) - 1, cells, device=centroids.device).long()].clone()
    for _ in range(iterations):
        lab, _ = assign(centroids, centres)
        sums = torch.zeros_like(centres).index_add_(0, lab, centroids)
        counts = torch.bincount(lab, minlength=cells).to(centroids.dtype)
        centres = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centres)
    return centres


class CellSearch:
    """Nearest centroid of fixed rows x (N, D) for any centroids, through coarse cells."""

    def __init__(self, x: torch.Tensor, probe: int = 16) -> None:
        self.x = x.float()
        self.probe = probe

    def __call__(self, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, p = self.x, len(centroids)
        cells = max(1, int(round(math.sqrt(p))))
        if cells * 4 >= p or self.probe >= cells:
            return assign(x, centroids)                       # too few centroids to pay off
        centres = coarse_cells(centroids, cells)
        cent_cell, _ = assign(centroids, centres)
        row_cell, _ = assign(x, centres)
        near = assign_topk(centres, centres, self.probe)       # (C, probe) nearest cells of each cell
        by_cell = torch.argsort(cent_cell)
        counts = torch.bincount(cent_cell, minlength=cells)
        starts = torch.cumsum(counts, 0) - counts
        labels = torch.empty(len(x), dtype=torch.long, device=x.device)
        dists = torch.empty(len(x), dtype=torch.float32, device=x.device)
        rows_by_cell = torch.argsort(row_cell)
        row_counts = torch.bincount(row_cell, minlength=cells).tolist()
        row_start = 0
        for c, m in enumerate(row_counts):
            if m == 0:
                continue
            rows = rows_by_cell[row_start:row_start + m]
            row_start += m
            cand = torch.cat([by_cell[starts[j]:starts[j] + counts[j]] for j in near[c].tolist()])
            lab, dist = assign(x[rows], centroids[cand])
            labels[rows] = cand[lab]
            dists[rows] = dist
        return labels, dists


def assign_topk(x: torch.Tensor, centroids: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (N, k) of the k nearest centroids of each row (nearest first)."""
    d = (centroids * centroids).sum(1)[None, :] - 2.0 * x @ centroids.T
    return torch.topk(d, k, dim=1, largest=False).indices
