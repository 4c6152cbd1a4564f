"""Fixed cameras framed on a scene's bounds: the same views for the original and its compressed
copy, so their renders can be compared pixel by pixel."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class View:
    position: tuple[float, float, float]
    target: tuple[float, float, float]
    up: tuple[float, float, float]


def views_around(means: np.ndarray, count: int = 4, fov_deg: float = 60.0, elevation_deg: float = 20.0
                 ) -> tuple[list[View], float, float]:
    """`count` cameras on a circle around the scene (about its y axis, which 3DGS captures keep
    vertical up to sign), looking at the centre, far enough that the central 80 % of the splats
    fill most of the frame. Returns (views, near, far). Bounds are robust: the 10th-90th percentile
    box, so a few far floaters do not shrink the scene to a dot."""
    lo, hi = np.percentile(means, 10, axis=0), np.percentile(means, 90, axis=0)
    centre = (lo + hi) / 2
    radius = float(np.linalg.norm(hi - lo) / 2) or 1.0
    distance = radius / math.tan(math.radians(fov_deg) / 2) * 1.1
    views = []
    for k in range(count):
        az = 2 * math.pi * k / count
        el = math.radians(elevation_deg)
        offset = np.array([math.cos(el) * math.sin(az), -math.sin(el), math.cos(el) * math.cos(az)]) * distance
        views.append(View(tuple(map(float, centre + offset)), tuple(map(float, centre)), (0.0, -1.0, 0.0)))
    return views, distance / 100, distance + radius * 10
