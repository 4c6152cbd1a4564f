"""Image fidelity of a render against a reference render: PSNR and SSIM (Wang et al. 2004:
Gaussian window sigma 1.5, K1 0.01, K2 0.03, on each RGB channel, averaged); numpy and scipy for
the engine's read-backs, the same in torch (`*_tensor`) where the renders are on a GPU."""
from __future__ import annotations

import math

import numpy as np
import torch


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


def _as_tensor(img) -> torch.Tensor:
    """(H, W, >=3) image, numpy or torch, as a float64 tensor of its RGB values (0..255)."""
    t = torch.from_numpy(np.ascontiguousarray(img)) if isinstance(img, np.ndarray) else img
    return t[..., :3].double()


def psnr_tensor(reference, other) -> float:
    """`psnr` computed by torch on the images' device (numpy or tensors holding 0..255 values)."""
    return psnr_ssim_views([reference], [other], with_ssim=False)[0][0]


def _gaussian_blur(x: torch.Tensor, sigma: float = 1.5, truncate: float = 4.0) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter(x, sigma) per channel of (C, H, W): the same normalised
    kernel (radius truncate * sigma) and its 'reflect' edges (the edge sample repeated)."""
    r = int(truncate * sigma + 0.5)
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[0]
    for dim in (2, 1):
        left = x.narrow(dim, 0, r).flip(dim)
        right = x.narrow(dim, x.shape[dim] - r, r).flip(dim)
        x = torch.cat([left, x, right], dim)
        weight = k.view(1, 1, -1, 1) if dim == 1 else k.view(1, 1, 1, -1)
        x = torch.nn.functional.conv2d(x[None], weight.expand(c, 1, *weight.shape[2:]), groups=c)[0]
    return x


def ssim_tensor(reference, other) -> float:
    """`ssim` computed by torch on the images' device: the same window, constants and mean."""
    return psnr_ssim_views([reference], [other])[1][0]


def psnr_ssim_views(references: list, others: list, with_ssim: bool = True) -> tuple[list[float], list[float]]:
    """(PSNR per view, SSIM per view) of pairs of renders of one size (numpy or tensors holding
    0..255 values): every view in one pass and one read-back, since a read-back per view and
    score waits for the device each time."""
    x = torch.stack([_as_tensor(a) for a in references]).permute(0, 3, 1, 2)     # (V, 3, H, W)
    y = torch.stack([_as_tensor(b) for b in others]).permute(0, 3, 1, 2).to(x.device)
    v = x.shape[0]
    mse = ((x - y) ** 2).mean(dim=(1, 2, 3))
    scores = [mse]
    if with_ssim:
        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
        xf, yf = x.reshape(-1, *x.shape[2:]), y.reshape(-1, *y.shape[2:])
        mx, my = _gaussian_blur(xf), _gaussian_blur(yf)
        sxx = _gaussian_blur(xf * xf) - mx * mx
        syy = _gaussian_blur(yf * yf) - my * my
        sxy = _gaussian_blur(xf * yf) - mx * my
        s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        scores.append(s.mean(dim=(1, 2)).reshape(v, 3).mean(1))
    values = torch.stack(scores).tolist()
    psnrs = [math.inf if m == 0 else 10 * math.log10(255.0 ** 2 / m) for m in values[0]]
    return psnrs, (values[1] if with_ssim else [])
