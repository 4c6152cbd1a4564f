"""How far a decoded scene is from its source, per attribute, in the units a user reads.

Pairs splats either by a known order (the compressor knows its permutation) or, for two files
on disk, by nearest position: the decoded positions are within a fraction of a 16-bit step of
the originals, far closer than any two distinct splats of a real scene.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from sogs_core.formats.sog.codes import log_transform
from sogs_core.model.device import numpy_tensor
from sogs_core.model.splats import ATTRIBUTES, Splats
from sogs_core.quantize.spelling import align_spelling


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


def _quat_angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N,) angles in degrees between the rotations of (N, 4) quaternions a and b (either sign,
    any length), in float64 column by column: a reduction over rows of four is the slow op on a
    CPU."""
    ca, cb = [c.double() for c in a.unbind(1)], [c.double() for c in b.unbind(1)]
    dot = ca[0] * cb[0] + ca[1] * cb[1] + ca[2] * cb[2] + ca[3] * cb[3]
    na = ca[0] * ca[0] + ca[1] * ca[1] + ca[2] * ca[2] + ca[3] * ca[3]
    nb = cb[0] * cb[0] + cb[1] * cb[1] + cb[2] * cb[2] + cb[3] * cb[3]
    cos = torch.clamp(dot.abs() / torch.sqrt(na * nb), 0.0, 1.0)
    return torch.rad2deg(2.0 * torch.arccos(cos))


def fidelity(reference: Splats, decoded: Splats, order: Optional[np.ndarray] = None) -> dict:
    """Error summary of `decoded` against `reference`.

    order: decoded[i] is reference[order[i]]; when None, splats are matched by position. A file
    with fewer splats than its reference (below --quality 100 the invisible ones are left out,
    `quantize.visibility`) is matched from its own side, and `missing_max_opacity` says how
    opaque the most opaque reference splat without a partner is.
    """
    report: dict = {"count_reference": reference.count, "count_decoded": decoded.count}
    if order is not None:
        ref, dec = reference.take(order), decoded
        report["unmatched"] = 0
    elif decoded.count < reference.count:
        idx, dup = match_by_position(decoded, reference)
        ref, dec = reference.take(idx), decoded
        report["unmatched"] = dup
        missing = np.ones(reference.count, bool)
        missing[idx] = False
        alpha = 1.0 / (1.0 + np.exp(-reference.opacity[missing].astype(np.float64)))
        report["missing_max_opacity"] = float(alpha.max()) if alpha.size else 0.0
    else:
        idx, dup = match_by_position(reference, decoded)
        ref, dec = reference, decoded.take(idx)
        report["unmatched"] = dup
    as_tensors = lambda s: {k: numpy_tensor(getattr(s, k)) for k in ATTRIBUTES}  # noqa: E731
    ref_t, dec_t = as_tensors(ref), as_tensors(dec)
    # a file may spell a rotation differently (`quantize.spelling`): compare like with like
    dec_t["quats"], dec_t["log_scales"] = align_spelling(ref_t["quats"], dec_t["quats"], dec_t["log_scales"])
    report.update(fidelity_tensors(ref_t, dec_t))
    return report


def fidelity_tensors(ref: dict[str, torch.Tensor], dec: dict[str, torch.Tensor]) -> dict:
    """The per-attribute errors of row-aligned scenes (float32 tensors keyed like `Splats`' fields,
    on any one device), summed in float64. Why tensors: the compressor has both scenes on its GPU,
    where this is far faster than numpy on the critical path (bench/NOTES.md)."""
    report: dict = {}
    means_r, means_d = ref["means"].double(), dec["means"].double()
    t_ref, t_dec = log_transform(means_r), log_transform(means_d)
    span = t_ref.max(0).values - t_ref.min(0).values
    step = torch.where(span > 0, span / 65535.0, torch.ones_like(span))
    pos_err = (means_r - means_d).abs()
    report["position_max_error"] = float(pos_err.max())
    report["position_mean_error"] = float(pos_err.mean())
    report["position_max_steps"] = float(((t_ref - t_dec).abs() / step).max())
    ang = _quat_angle_deg(ref["quats"].double(), dec["quats"].double())
    report["rotation_max_deg"] = float(ang.max())
    report["rotation_mean_deg"] = float(ang.mean())
    # scales and colours: differences in float32 (both sides are float32; where they are close
    # the difference is exact), sums in float64: on a CPU the float64 copies of an SH3 scene's
    # 45 columns were most of the report's time
    sc = (ref["log_scales"].float() - dec["log_scales"].float()).abs()
    report["log_scale_max_error"] = float(sc.max())
    report["log_scale_mean_error"] = float(sc.mean(dtype=torch.float64))
    op = (torch.sigmoid(ref["opacity"].double()) - torch.sigmoid(dec["opacity"].double())).abs()
    report["opacity_max_error"] = float(op.max())
    dc = ref["f_dc"].float() - dec["f_dc"].float()
    report["f_dc_rmse"] = float(torch.sqrt((dc * dc).mean(dtype=torch.float64)))
    report["f_dc_max_error"] = float(dc.abs().max())
    k = min(ref["f_rest"].shape[1], dec["f_rest"].shape[1])
    if k:
        d = ref["f_rest"][:, :k].float() - dec["f_rest"][:, :k].float()
        report["f_rest_rmse"] = float(torch.sqrt((d * d).mean(dtype=torch.float64)))
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
