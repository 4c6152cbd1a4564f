"""How far a decoded scene is from its source, per attribute, in the units a user reads.

Pairs splats either by a known order (the compressor knows its permutation) or, for two files
on disk, by nearest position: the decoded positions are within a fraction of a 16-bit step of
the originals, far closer than any two distinct splats of a real scene.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .splats import Splats


def _log_t(v: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.log1p(np.abs(v))


def match_by_position(reference: Splats, other: Splats) -> tuple[np.ndarray, int]:
    """Index into `other` of each reference splat's nearest neighbour; and how many reference
    splats share a neighbour with another (0 for a one-to-one match)."""
    from scipy.spatial import cKDTree

    tree = cKDTree(_log_t(other.means.astype(np.float64)))
    _, idx = tree.query(_log_t(reference.means.astype(np.float64)), k=1)
    idx = np.asarray(idx, np.int64)
    duplicates = len(idx) - len(np.unique(idx))
    return idx, int(duplicates)


def _quat_angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    dot = np.clip(np.abs((a * b).sum(1)), 0.0, 1.0)
    return np.degrees(2.0 * np.arccos(dot))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


def fidelity(reference: Splats, decoded: Splats, order: Optional[np.ndarray] = None) -> dict:
    """Error summary of `decoded` against `reference`.

    order: decoded[i] is reference[order[i]]; when None, splats are matched by position.
    """
    report: dict = {"count_reference": reference.count, "count_decoded": decoded.count}
    if order is not None:
        ref = reference.take(order)
        dec = decoded
        report["unmatched"] = 0
    else:
        idx, dup = match_by_position(reference, decoded)
        ref, dec = reference, decoded.take(idx)
        report["unmatched"] = dup
    t_ref = _log_t(ref.means.astype(np.float64))
    t_dec = _log_t(dec.means.astype(np.float64))
    span = t_ref.max(0) - t_ref.min(0)
    step = np.where(span > 0, span / 65535.0, 1.0)
    pos_err = np.abs(ref.means.astype(np.float64) - dec.means)
    report["position_max_error"] = float(pos_err.max())
    report["position_mean_error"] = float(pos_err.mean())
    report["position_max_steps"] = float((np.abs(t_ref - t_dec) / step).max())
    ang = _quat_angle_deg(ref.quats.astype(np.float64), dec.quats.astype(np.float64))
    report["rotation_max_deg"] = float(ang.max())
    report["rotation_mean_deg"] = float(ang.mean())
    sc = np.abs(ref.log_scales.astype(np.float64) - dec.log_scales)
    report["log_scale_max_error"] = float(sc.max())
    report["log_scale_mean_error"] = float(sc.mean())
    op = np.abs(_sigmoid(ref.opacity) - _sigmoid(dec.opacity))
    report["opacity_max_error"] = float(op.max())
    report["f_dc_rmse"] = float(np.sqrt(((ref.f_dc.astype(np.float64) - dec.f_dc) ** 2).mean()))
    report["f_dc_max_error"] = float(np.abs(ref.f_dc.astype(np.float64) - dec.f_dc).max())
    k = min(ref.f_rest.shape[1], dec.f_rest.shape[1])
    if k:
        d = ref.f_rest[:, :k].astype(np.float64) - dec.f_rest[:, :k]
        report["f_rest_rmse"] = float(np.sqrt((d ** 2).mean()))
    else:
        report["f_rest_rmse"] = 0.0
    return report


def format_report(report: dict) -> str:
    """Aligned two-column text for the CLI."""
    width = max(len(k) for k in report)
    lines = []
    for key, value in report.items():
        text = f"{value:.6g}" if isinstance(value, float) else str(value)
        lines.append(f"{key.ljust(width)}  {text}")
    return "\n".join(lines)
