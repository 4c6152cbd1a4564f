"""Synthetic 3DGS scenes for demos and tests: splats on a few dozen thin surfaces with smooth
colour and SH fields, a few floaters far out. Built so that sorting pays, like a trained scene."""
from __future__ import annotations

import numpy as np

from sogs_core.model.splats import SH_COEFFS_PER_CHANNEL, Splats


def synthetic_scene(n: int, sh_degree: int = 3, seed: int = 0) -> Splats:
    rng = np.random.default_rng(seed)
    surfaces = 16
    centre = rng.normal(0.0, 2.5, (surfaces, 3))
    normal = rng.normal(size=(surfaces, 3))
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    which = rng.integers(0, surfaces, n)
    offset = rng.normal(size=(n, 3))
    offset -= (offset * normal[which]).sum(1, keepdims=True) * normal[which]
    means = centre[which] + offset * rng.uniform(0.3, 1.2, surfaces)[which, None]
    far = rng.random(n) < 0.02
    means[far] = rng.normal(0.0, 25.0, (int(far.sum()), 3))
    f_dc = rng.normal(0.0, 0.8, (surfaces, 3))[which] + 0.25 * np.cos(means * 1.3) + rng.normal(0, 0.05, (n, 3))
    k = SH_COEFFS_PER_CHANNEL[sh_degree]
    f_rest = (0.04 * np.sin(np.repeat(means, k, axis=1) * rng.normal(0, 1, 3 * k))
              + rng.normal(0, 0.01, (n, 3 * k))) if k else np.zeros((n, 0))
    log_scales = rng.normal(-4.0, 0.6, (n, 3)) + rng.normal(0, 0.4, surfaces)[which, None]
    quats = rng.normal(size=(n, 4))
    quats[:, 0] += 1.0
    opacity = rng.normal(0.5, 1.8, n)
    f32 = np.float32
    return Splats(means.astype(f32), quats.astype(f32), log_scales.astype(f32), f_dc.astype(f32),
                  opacity.astype(f32), f_rest.astype(f32))
