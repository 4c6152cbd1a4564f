"""Scale codes on the PlayCanvas engine's own levels (below --quality 100).

The engine keeps every splat's ln(scale) on 255 levels 8.6 % apart (`model.work_buffer`), for the
input as for our file. A 256-entry scale codebook holding those levels, each splat coded with the
level the engine rounds its input scale to, gives the engine back exactly the scale it draws for
the input: the scale error the engine shows drops to nothing, and the codes fall on fewer distinct
values than a fitted codebook's (bench/NOTES.md, session 36). A viewer that does not round (the
file read exactly) sees up to half a level, 4.2 %, where the fitted codebook's error is smaller.
"""
from __future__ import annotations

import math

import torch

from sogs_core.model.work_buffer import LOG_MIN, LOG_RANGE, SCALE_STEP, scale_codes

#: the share of a scene's scale values that may lie outside the engine's range before the grid is
#: not used (a scene in units far from the engine's, whose scales the engine clamps anyway)
MAX_OUTSIDE = 0.01
#: scales under the engine's smallest level are harmless where that level is below this fraction
#: of the scene's extent (a trained scene's thin axes: leica holds 3.5 % of them, its smallest
#: level 2e-7 of its extent), whatever their share
NEGLIGIBLE_OF_EXTENT = 1e-4


def fits_engine_grid(log_scales: torch.Tensor, means: torch.Tensor) -> bool:
    """Whether the scene's ln(scale) values suit the engine's levels: at most MAX_OUTSIDE of them
    above the range, and below it either as few or too small to see in the scene (its centres
    `means` span its extent; stored at the smallest level instead, which the engine also draws
    them at)."""
    if not log_scales.numel():
        return False
    half = SCALE_STEP / 2
    if float((log_scales > LOG_MIN + LOG_RANGE + half).float().mean()) > MAX_OUTSIDE:
        return False
    if float((log_scales < LOG_MIN - half).float().mean()) <= MAX_OUTSIDE:
        return True
    extent = float((means.amax(0) - means.amin(0)).max())
    return math.exp(LOG_MIN) <= NEGLIGIBLE_OF_EXTENT * extent


def engine_grid_codebook(log_scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(codebook (256,) float32: the engine's levels, index i at LOG_MIN + i x SCALE_STEP; labels
    uint8 of `log_scales`' shape: each value's engine code, 1..255, or 0 for the smallest level
    where the engine would draw nothing)."""
    codebook = (torch.arange(256, dtype=torch.float64) * SCALE_STEP + LOG_MIN).float().to(log_scales.device)
    return codebook, scale_codes(log_scales).to(torch.uint8)
