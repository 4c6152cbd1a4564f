"""Counting values into a known number of bins on their own device, for the stages that must not
wait for it (the SH palette's k-means, the codebook labels, our WebP encoder)."""
from __future__ import annotations

from typing import Optional

import torch


def count_labels(labels: torch.Tensor, bins: int, dtype: torch.dtype = torch.long,
                 weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """How many of `labels` (any shape, values 0..bins-1) fall in each of `bins` bins, each
    counted `weights` times (1 by default). Unlike torch.bincount, it never waits for the device
    (bincount reads the largest label back first): each wait is a pause for the calling thread,
    and a longer one while other threads hold the interpreter."""
    labels = labels.reshape(-1)
    add = torch.ones(len(labels), dtype=dtype, device=labels.device) if weights is None \
        else weights.reshape(-1).to(dtype)
    return torch.zeros(bins, dtype=dtype, device=labels.device).index_add_(0, labels, add)
