"""Which splats a box, a sphere or an opacity floor keeps: splat-transform's `-B` (inclusive
bounds, +-inf for an open side), `-S` (centres strictly inside) and `-V opacity,gte,a`
(sigmoid of the logit), tested on the centres in the engine's frame (a PLY's x and y negated)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from sogs_core.edit.transform import ENGINE_FRAME
from sogs_core.model.splats import Splats


def engine_positions(splats: Splats) -> np.ndarray:
    """(N, 3) centres in the engine's frame, float64."""
    return splats.means.astype(np.float64) * np.diag(ENGINE_FRAME)


def inside_box(splats: Splats, box: Sequence[float]) -> np.ndarray:
    """(N,) True where the centre lies in [x, X] x [y, Y] x [z, Z]."""
    p = engine_positions(splats)
    lo, hi = np.asarray(box[:3], np.float64), np.asarray(box[3:], np.float64)
    return ((p >= lo) & (p <= hi)).all(1)


def inside_sphere(splats: Splats, sphere: Sequence[float]) -> np.ndarray:
    """(N,) True where the centre lies strictly inside the sphere (x, y, z, r)."""
    d = engine_positions(splats) - np.asarray(sphere[:3], np.float64)
    return (d * d).sum(1) < float(sphere[3]) ** 2


def opaque_enough(splats: Splats, min_opacity: float) -> np.ndarray:
    """(N,) True where sigmoid(opacity) >= min_opacity."""
    return 1.0 / (1.0 + np.exp(-splats.opacity.astype(np.float64))) >= min_opacity
