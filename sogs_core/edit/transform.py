"""Move a whole scene: rotate, scale and translate, with splat-transform's `-r`, `-s`, `-t`
meaning, so that the same numbers give the same scene.

Its conventions: the angles are Euler degrees in the PlayCanvas engine's frame, R = Rz Ry Rx
(x applied first, fixed axes); positions become t + s R p; each splat's quaternion is
pre-multiplied by the rotation's (lengths kept, not normalised); log-scales grow by log s;
the SH coefficients are rotated band by band (`sh_rotation`); opacity and f_dc do not change.
The engine's frame is a PLY's turned 180 degrees about z (x and y negated), so in the stored
coordinates the rotation is D R D and the translation D t, D = diag(-1, -1, 1). Computed in
float64, stored in float32.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from sogs_core.edit.sh_rotation import sh_rotation
from sogs_core.model.splats import Splats

#: the engine's frame against a PLY's: a half turn about z
ENGINE_FRAME = np.diag([-1.0, -1.0, 1.0])


def euler_quat(degrees: Sequence[float]) -> np.ndarray:
    """(w, x, y, z) of the rotation Rz Ry Rx (PlayCanvas `Quat.setFromEulerAngles`)."""
    hx, hy, hz = (math.radians(a) / 2 for a in degrees)
    cx, sx, cy, sy, cz, sz = math.cos(hx), math.sin(hx), math.cos(hy), math.sin(hy), math.cos(hz), math.sin(hz)
    return np.array([cx * cy * cz + sx * sy * sz, sx * cy * cz - cx * sy * sz,
                     cx * sy * cz + sx * cy * sz, cx * cy * sz - sx * sy * cz])


def quat_matrix(q: np.ndarray) -> np.ndarray:
    """3x3 rotation of the unit quaternion (w, x, y, z)."""
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def _quat_product(r: np.ndarray, q: np.ndarray) -> np.ndarray:
    """r (4,) times each row of q (N, 4), Hamilton product, float64."""
    w1, x1, y1, z1 = r
    w2, x2, y2, z2 = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    return np.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], 1)


def transform_splats(splats: Splats, rotate: Optional[Sequence[float]] = None, scale: Optional[float] = None,
                     translate: Optional[Sequence[float]] = None) -> Splats:
    """The scene rotated (Euler degrees), then scaled, then translated, in the engine's frame
    (the scene itself, not a copy, when there is nothing to do)."""
    turn = rotate is not None and any(rotate)
    grow = scale is not None and scale != 1
    move = translate is not None and any(translate)
    if not (turn or grow or move):
        return splats
    means = splats.means.astype(np.float64)
    quats, f_rest = splats.quats, splats.f_rest
    log_scales = splats.log_scales
    if turn:
        r = euler_quat(rotate)
        r_stored = r * np.array([1.0, -1.0, -1.0, 1.0])          # D R D as a quaternion
        rot = quat_matrix(r_stored)
        means = means @ rot.T
        quats = _quat_product(r_stored, quats.astype(np.float64)).astype(np.float32)
        k = splats.sh_coeffs
        if k:
            m = sh_rotation(rot, k)
            rest = splats.f_rest.reshape(splats.count, 3, k).astype(np.float64) @ m.T
            f_rest = rest.reshape(splats.count, 3 * k).astype(np.float32)
    if grow:
        means = means * scale
        log_scales = (log_scales.astype(np.float64) + math.log(scale)).astype(np.float32)
    if move:
        means = means + ENGINE_FRAME @ np.asarray(translate, np.float64)
    return Splats(means.astype(np.float32), quats, log_scales, splats.f_dc, splats.opacity, f_rest)
