"""How much a value's quantization error shows in a picture: the weights every codebook and the
SH palette fit with (the render metric chose them; bench/NOTES.md, session 17)."""
from __future__ import annotations

import torch

#: density weight of the 1-D codebooks (`kmeans_1d`'s density_alpha): plain k-means spends its
#: levels on the dense centre and starves the tails, where the largest and brightest splats are;
#: chosen by render PSNR in the PlayCanvas engine (bench/NOTES.md)
TAIL_WEIGHT = 0.25
#: the same for the colour codebook: colours want more of their levels in the dense centre than
#: scales do (session 19: 0.55 gave donut +0.37 dB for +0.56 % bytes, the others +0.02-0.05 dB)
COLOUR_TAIL_WEIGHT = 0.55


def splat_importance(log_scales: torch.Tensor, opacity: torch.Tensor) -> torch.Tensor:
    """How much a splat's scale or colour error shows in a picture, per splat: its opacity times
    the geometric mean of its two largest radii ((opacity^2 x area)^0.5). A large opaque splat's
    error covers many pixels; a faint speck's hardly any. The exponent 0.5 was chosen by render
    PSNR on the real scenes (bench/NOTES.md)."""
    top2 = torch.topk(log_scales.float(), 2, dim=1).values.sum(1)
    return torch.sigmoid(opacity.float()) * torch.exp(0.5 * top2)
