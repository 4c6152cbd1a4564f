"""Quantizers of SOG v2 and their exact inverses (the decoder uses the same functions).

Each `encode_*` maps float attributes to the bytes stored in the images; each `decode_*` is the
reader's inverse from the format brief. Keeping both sides in one module makes the round-trip
bound of every attribute a property of this file alone.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import torch

from .codebook import kmeans_1d
from .palette import kmeans, palette_size

SQRT2 = math.sqrt(2.0)


# ---- positions: 16-bit, log-transformed -------------------------------------------------------
def log_transform(v: torch.Tensor) -> torch.Tensor:
    return torch.sign(v) * torch.log1p(v.abs())


def encode_means(means: torch.Tensor) -> tuple[torch.Tensor, list[float], list[float]]:
    """(N, 3) positions -> (N, 3) int32 codes in 0..65535, per-axis mins and maxs of t(v)."""
    t = log_transform(means.double())
    lo, hi = t.min(0).values, t.max(0).values
    rng = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    q = torch.round(65535.0 * (t - lo) / rng).clamp(0, 65535).to(torch.int32)
    return q, lo.tolist(), hi.tolist()


def decode_means(q: np.ndarray, mins, maxs) -> np.ndarray:
    lo = np.asarray(mins, np.float64)
    hi = np.asarray(maxs, np.float64)
    rng = np.where(hi > lo, hi - lo, 1.0)
    t = lo + rng * (q.astype(np.float64) / 65535.0)
    return (np.sign(t) * np.expm1(np.abs(t))).astype(np.float32)


# ---- rotations: smallest three ---------------------------------------------------------------
_OTHERS = torch.tensor([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])


def encode_quats(quats: torch.Tensor) -> torch.Tensor:
    """(N, 4) w,x,y,z -> (N, 4) uint8: three components in RGB, 252 + index of the largest in A."""
    q = quats.double()
    q = q / q.norm(dim=1, keepdim=True)
    m = q.abs().argmax(1)
    largest = q.gather(1, m[:, None])
    q = q * torch.where(largest < 0, -1.0, 1.0)
    others = q.gather(1, _OTHERS.to(q.device)[m])
    b = torch.round(255.0 * (others * SQRT2 * 0.5 + 0.5)).clamp(0, 255)
    return torch.cat([b, (252 + m)[:, None].double()], 1).to(torch.uint8)


def decode_quats(b: np.ndarray) -> np.ndarray:
    """(N, 4) uint8 -> (N, 4) unit quaternions w,x,y,z (tag outside 252..255 -> identity)."""
    c = (b[:, :3].astype(np.float64) / 255.0 * 2.0 - 1.0) / SQRT2
    largest = np.sqrt(np.maximum(0.0, 1.0 - (c * c).sum(1)))
    tag = b[:, 3].astype(np.int64) - 252
    out = np.zeros((len(b), 4), np.float64)
    valid = (tag >= 0) & (tag <= 3)
    others = _OTHERS.numpy()
    for m in range(4):
        rows = valid & (tag == m)
        out[rows, m] = largest[rows]
        out[np.ix_(rows, others[m])] = c[rows]
    out[~valid] = (1.0, 0.0, 0.0, 0.0)
    return out.astype(np.float32)


# ---- opacity: one byte after the sigmoid -----------------------------------------------------
def encode_opacity(logits: torch.Tensor) -> torch.Tensor:
    return torch.round(torch.sigmoid(logits.double()) * 255.0).clamp(0, 255).to(torch.uint8)


def decode_opacity(a: np.ndarray) -> np.ndarray:
    p = np.clip(a.astype(np.float64) / 255.0, 1e-6, 1.0 - 1e-6)
    return np.log(p / (1.0 - p)).astype(np.float32)


# ---- the whole scene -------------------------------------------------------------------------
@dataclass
class QuantizedScene:
    """Everything the images hold, per splat in the final (sorted) order, plus the codebooks."""

    count: int
    means_q: np.ndarray            # (N, 3) int32, 0..65535
    means_mins: list
    means_maxs: list
    quats_b: np.ndarray            # (N, 4) uint8
    scales_idx: np.ndarray         # (N, 3) uint8
    scales_codebook: np.ndarray    # (256,) float32
    sh0_idx: np.ndarray            # (N, 3) uint8
    sh0_codebook: np.ndarray       # (256,) float32
    opacity_b: np.ndarray          # (N,) uint8
    sh_bands: int = 0
    sh_labels: Optional[np.ndarray] = None        # (N,) int64 palette index
    sh_palette_idx: Optional[np.ndarray] = None   # (P, 3, K) uint8 codebook indices
    sh_codebook: Optional[np.ndarray] = None      # (256,) float32
    sh_palette_count: int = 0
    sh_inertia: float = 0.0

    def take(self, order: np.ndarray) -> "QuantizedScene":
        """The same scene with splat i of the result = splat order[i] of this one (codebooks and
        palette unchanged): the codes are order-free, so the order is chosen after quantizing."""
        def take(a: Optional[np.ndarray]) -> Optional[np.ndarray]:
            return None if a is None else np.take(a, order, axis=0)   # 3-4x faster than a[order] on (N, 3)

        return replace(self, count=len(order), means_q=take(self.means_q), quats_b=take(self.quats_b),
                       scales_idx=take(self.scales_idx), sh0_idx=take(self.sh0_idx),
                       opacity_b=take(self.opacity_b), sh_labels=take(self.sh_labels))

    def renumber_palette(self, new_index: np.ndarray) -> "QuantizedScene":
        """The same scene with SH palette entry e renamed new_index[e] (labels and palette rows)."""
        if self.sh_labels is None:
            return self
        rows = np.empty_like(new_index)
        rows[new_index] = np.arange(len(new_index))
        return replace(self, sh_labels=new_index[self.sh_labels], sh_palette_idx=self.sh_palette_idx[rows])


def quantize_scene(means: torch.Tensor, quats: torch.Tensor, log_scales: torch.Tensor,
                   f_dc: torch.Tensor, opacity: torch.Tensor, f_rest: torch.Tensor,
                   kmeans_iterations: int = 10, seed: int = 0, progress=None,
                   timings: Optional[dict] = None) -> QuantizedScene:
    """Quantize the attributes (all tensors on one device), splats in input order.

    Nothing here depends on the order except the k-means start (random rows of the input), so
    the order is chosen afterwards, from the stored bytes, and applied with `QuantizedScene.take`.

    timings, when given, receives 'cluster': the seconds of the SH palette k-means."""
    n = len(means)
    mq, mins, maxs = encode_means(means)
    scb, sidx = kmeans_1d(log_scales)
    dcb, didx = kmeans_1d(f_dc)
    out = QuantizedScene(
        count=n, means_q=mq.cpu().numpy(), means_mins=mins, means_maxs=maxs,
        quats_b=encode_quats(quats).cpu().numpy(),
        scales_idx=sidx.cpu().numpy(), scales_codebook=scb.cpu().numpy(),
        sh0_idx=didx.cpu().numpy(), sh0_codebook=dcb.cpu().numpy(),
        opacity_b=encode_opacity(opacity).cpu().numpy())
    k = f_rest.shape[1] // 3
    if k:
        p = palette_size(n)
        t0 = time.perf_counter()
        centroids, labels, inertia = kmeans(f_rest.float(), p, kmeans_iterations, seed, progress)
        if f_rest.is_cuda:
            torch.cuda.synchronize(f_rest.device)
        if timings is not None:
            timings["cluster"] = time.perf_counter() - t0
        if len(centroids) < p:  # fewer splats than palette entries cannot happen (p <= n), but stay safe
            centroids = torch.cat([centroids, centroids[-1:].expand(p - len(centroids), -1)])
        ccb, cidx = kmeans_1d(centroids)
        out.sh_bands = (0, 3, 8, 15).index(k)
        out.sh_labels = labels.cpu().numpy()
        out.sh_palette_idx = cidx.reshape(p, 3, k).cpu().numpy()
        out.sh_codebook = ccb.cpu().numpy()
        out.sh_palette_count = p
        out.sh_inertia = inertia
    return out


def dequantize(q: QuantizedScene) -> "Splats":
    """What a decoder will read back from `q` (no image round trip): for fidelity reports."""
    from .splats import Splats

    f_rest = np.zeros((q.count, 0), np.float32)
    if q.sh_bands:
        vals = q.sh_codebook[q.sh_palette_idx][q.sh_labels]          # (N, 3, K)
        f_rest = np.ascontiguousarray(vals.reshape(q.count, -1), dtype=np.float32)
    return Splats(means=decode_means(q.means_q, q.means_mins, q.means_maxs),
                  quats=decode_quats(q.quats_b), log_scales=q.scales_codebook[q.scales_idx],
                  f_dc=q.sh0_codebook[q.sh0_idx], opacity=decode_opacity(q.opacity_b), f_rest=f_rest)
