"""The matrix that rotates SH coefficients (bands 1..3, the 3DGS basis) with the scene.

A scene rotated by R must show along a direction d what it showed along R^T d, so the new
coefficients c' of one band solve Y(d) c' = Y(R^T d) c for every d. Each band maps onto itself,
so one small least-squares fit per band over a fixed set of directions gives its matrix exactly
(to float64 rounding): no Wigner-D recurrences to get the 3DGS basis's signs wrong.
"""
from __future__ import annotations

import numpy as np
import torch

from sogs_core.model.sh import BAND_SLICES, sh_basis

#: directions the fit is made over: more than the 7 unknowns per row of the largest band
_FIT_DIRECTIONS = 64


def _sphere_points(n: int) -> np.ndarray:
    """n directions spread evenly over the sphere (a Fibonacci lattice), float64."""
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    r = np.sqrt(1 - z * z)
    phi = np.pi * (1 + 5 ** 0.5) * i
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], 1)


def sh_rotation(rotation: np.ndarray, coeffs: int) -> np.ndarray:
    """(coeffs, coeffs) block-diagonal matrix M with c' = M c for one colour channel's f_rest
    coefficients (coeffs = 3, 8 or 15), the scene rotated by the 3x3 matrix `rotation`."""
    dirs = _sphere_points(_FIT_DIRECTIONS)
    before = sh_basis(torch.from_numpy(dirs), coeffs).numpy()
    after = sh_basis(torch.from_numpy(dirs @ rotation), coeffs).numpy()       # rows: Y(R^T d)
    m = np.zeros((coeffs, coeffs))
    for lo, hi in BAND_SLICES:
        if hi > coeffs:
            break
        m[lo:hi, lo:hi] = np.linalg.lstsq(before[:, lo:hi], after[:, lo:hi], rcond=None)[0]
    return m
