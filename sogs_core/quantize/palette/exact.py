"""The exact nearest-centroid search of the SH palette: batched matmuls, |x|^2 dropped from the
argmin (constant per row), batches sized so that the N x P distance block stays within a budget."""
from __future__ import annotations

import torch


def _batch_rows(k: int, budget_bytes: int) -> int:
    return max(256, budget_bytes // (4 * max(k, 1)))


def assign(x: torch.Tensor, centroids: torch.Tensor, budget_bytes: int = 1 << 28) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid of each row of x; returns (labels int64, squared distances float32)."""
    c_sq = (centroids * centroids).sum(1)
    labels = torch.empty(len(x), dtype=torch.long, device=x.device)
    dists = torch.empty(len(x), dtype=torch.float32, device=x.device)
    step = _batch_rows(len(centroids), budget_bytes)
    for s in range(0, len(x), step):
        xb = x[s:s + step]
        d = torch.addmm(c_sq[None, :], xb, centroids.T, beta=1.0, alpha=-2.0)
        best, idx = d.min(1)
        labels[s:s + step] = idx
        dists[s:s + step] = (best + (xb * xb).sum(1)).clamp_min(0)
    return labels, dists
