"""Image fidelity of a render against a reference render: PSNR and SSIM (Wang et al. 2004:
Gaussian window sigma 1.5, K1 0.01, K2 0.03, on each RGB channel, averaged)."""
from __future__ import annotations

import math

import numpy as np


def psnr(reference: np.ndarray, other: np.ndarray) -> float:
    """dB over RGB, 8-bit range; inf for identical images."""
    a = reference[..., :3].astype(np.float64)
    b = other[..., :3].astype(np.float64)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def ssim(reference: np.ndarray, other: np.ndarray) -> float:
    from scipy.ndimage import gaussian_filter

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    scores = []
    for ch in range(3):
        x = reference[..., ch].astype(np.float64)
        y = other[..., ch].astype(np.float64)
        mx, my = gaussian_filter(x, 1.5), gaussian_filter(y, 1.5)
        sxx = gaussian_filter(x * x, 1.5) - mx * mx
        syy = gaussian_filter(y * y, 1.5) - my * my
        sxy = gaussian_filter(x * y, 1.5) - mx * my
        s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        scores.append(float(s.mean()))
    return float(np.mean(scores))
