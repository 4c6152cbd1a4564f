"""Opacity that makes up for the scale codebook's rounding.

The 256-entry scale codebook is the largest error in the picture on every real scene
(bench/NOTES.md, session 19). A splat drawn a little larger than it should be puts more ink on
the screen; for a Gaussian of amplitude A and width s drawn at width s(1 + d), the amplitude
that keeps the picture closest is about A (1 - d), which leaves a third of the squared error.
So below --quality 100 each opacity is scaled by exp(-d), d the mean log-scale error of the
splat's two largest axes (those that make its footprint): +1.0 dB on the trained SH3 capture,
+0.05-0.13 dB on the others, no bytes.
"""
from __future__ import annotations

import torch


def compensated_opacity(opacity: torch.Tensor, log_scales: torch.Tensor,
                        stored_log_scales: torch.Tensor) -> torch.Tensor:
    """Opacity logits scaled (after the sigmoid) by exp(-d), d the mean of stored minus true
    log-scale over each splat's two largest axes; same shape and dtype as `opacity`."""
    top2 = torch.topk(log_scales.double(), 2, dim=1).indices
    d = (stored_log_scales.double() - log_scales.double()).gather(1, top2).mean(1)
    alpha = (torch.sigmoid(opacity.double()) * torch.exp(-d)).clamp(1e-7, 1.0 - 1e-7)
    return torch.logit(alpha).to(opacity.dtype)
