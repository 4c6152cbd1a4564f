"""The PlayCanvas engine's compact work buffer (engine 2.23, its default `gsplatDataFormat`):
what precision every splat keeps between the file and the screen. Two rooms read it: the render
metric's engine model (`render.engine_model`) rounds as the engine does, and the quantizer puts
scale codes on the engine's own levels (`quantize.engine_grid`)."""
from __future__ import annotations

import math

import torch

#: ln(scale) is stored as round((ln s - LOG_MIN) x 255 / LOG_RANGE), clamped to 1..255 (0: a
#: scale under ZERO_SCALE, drawn as nothing)
LOG_MIN, LOG_RANGE = -12.0, 21.0
SCALE_STEP = LOG_RANGE / 255.0
ZERO_SCALE = 1e-10
#: levels of the rotation's three stored components (q.xyz / sqrt(1 + w)) and of the colour's channels
ROTATION_LEVELS = (2047.0, 2047.0, 1023.0)
COLOUR_LEVELS = (2047.0, 2047.0, 1023.0)
#: the colour's stored range, [0, COLOUR_MAX]
COLOUR_MAX = 4.0


def scale_codes(log_scales: torch.Tensor) -> torch.Tensor:
    """The engine's code (1..255, int64) of each ln(scale); 0 where the scale is under ZERO_SCALE."""
    code = torch.floor((log_scales.double() - LOG_MIN) / SCALE_STEP + 0.5).clamp(1.0, 255.0).long()
    return torch.where(log_scales < math.log(ZERO_SCALE), torch.zeros_like(code), code)


def scale_levels(codes: torch.Tensor) -> torch.Tensor:
    """ln(scale) the engine reads back for each code (float32; code 0: -inf, nothing drawn)."""
    out = (codes.double() * SCALE_STEP + LOG_MIN).float()
    return torch.where(codes == 0, torch.full_like(out, -math.inf), out)
