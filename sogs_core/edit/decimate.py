"""Coarser levels of detail: halve a scene by merging neighbouring splats in pairs.

How (our method; the facts it rests on are public: splat-transform's decimation and the
"moment matching" of Gaussian mixtures):

* Who merges with whom: the splats are walked along a Morton curve (inside one leaf of the
  chunk tree: a pair never crosses a chunk), and each link between consecutive splats gets a
  cost, Ward's criterion: how much the merge adds to the weighted second moment,
  w_a w_b / (w_a + w_b) * (|mu_a - mu_b|^2 + rho^2 |c_a - c_b|^2), with c the base colour and
  rho the scene's median splat size (a colour step of 1 weighs like one typical splat width).
  A link is taken when it is cheaper than both links beside it (a local minimum: no splat is in
  two taken links); taken splats leave the walk and the rest are linked again, round after
  round, until half the splats are gone or no link is left. Every step is a vectorised tensor
  operation: the same code on a GPU and a CPU, no per-splat loop.
* How a pair becomes one splat (moment matching): each splat weighs w = alpha * area (opacity
  times the surface area of its 1-sigma ellipsoid, Thomsen's formula), the "ink" it puts on the
  screen. The merged mean is the weighted mean; the merged covariance the weighted sum of
  (delta delta^T + Sigma_k) (the law of total variance), so the pair's extent is kept; its
  eigenvectors give the rotation and the square roots of its eigenvalues the scales. Opacity
  compensates for the larger splat: alpha = min(1, (w_a + w_b) / area_merged), the ink is kept
  unless that would need alpha > 1. Colour and every SH coefficient are weighted means.
"""
from __future__ import annotations

from typing import Optional

import torch

from sogs_core.model.rotations import quat_to_matrix
from sogs_core.model.sh import SH_C0
from sogs_core.model.splats import ATTRIBUTES
from sogs_core.order.curves import curve_order

#: Thomsen's exponent for the surface area of an ellipsoid (relative error < 1.1 %)
THOMSEN_P = 1.6075
MAX_ROUNDS = 24


def ellipsoid_area(s: torch.Tensor) -> torch.Tensor:
    """(N, 3) semi-axes -> (N,) surface areas."""
    a, b, c = s[:, 0], s[:, 1], s[:, 2]
    p = THOMSEN_P
    return 4 * torch.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)


def matrix_to_quat(m: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) proper rotations -> (N, 4) unit quaternions w, x, y, z (w >= 0).

    Each row takes the branch of its largest diagonal term (Shepperd), so no division by a
    value near zero."""
    m00, m01, m02 = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    m10, m11, m12 = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
    m20, m21, m22 = m[:, 2, 0], m[:, 2, 1], m[:, 2, 2]
    tr = m00 + m11 + m22
    cands = torch.stack([
        torch.stack([1 + tr, m21 - m12, m02 - m20, m10 - m01], 1),
        torch.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], 1),
        torch.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], 1),
        torch.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], 1)], 1)   # (N, 4 branches, 4)
    pick = torch.stack([tr, m00, m11, m22], 1).argmax(1)
    q = cands[torch.arange(len(m), device=m.device), pick]
    q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return torch.where(q[:, :1] < 0, -q, q)


def eigh3(a: torch.Tensor, sweeps: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(eigenvalues (N, 3), eigenvectors as columns (N, 3, 3)) of symmetric 3x3 matrices by
    cyclic Jacobi rotations, batched. Why not torch.linalg.eigh: its batched CUDA path asks for
    workspace that grows past the GPU's memory for a large batch (bench/NOTES.md); 3x3 Jacobi converges
    quadratically, 8 sweeps are far past float64 precision. Why element by element: the six
    distinct entries and nine vector entries as (N,) tensors cost a few dozen elementwise kernels
    per rotation, where (N, 3, 3) matrix products each built a rotation matrix and two batched
    3x3 products (most of the decimation's time)."""
    m = [[a[:, i, j] for j in range(3)] for i in range(3)]
    one = torch.ones_like(m[0][0])
    zero = torch.zeros_like(one)
    v = [[one if i == j else zero for j in range(3)] for i in range(3)]
    for _ in range(sweeps):
        for p, q in ((0, 1), (0, 2), (1, 2)):
            r = 3 - p - q                                   # the third index
            apq = m[p][q]
            small = apq.abs() < 1e-300
            theta = (m[q][q] - m[p][p]) / (2 * torch.where(small, one, apq))
            t = torch.sign(theta) / (theta.abs() + torch.sqrt(theta * theta + 1))
            t = torch.where(small, zero, torch.where(theta == 0, one, t))
            c = 1 / torch.sqrt(t * t + 1)
            s = t * c
            arp, arq = m[r][p], m[r][q]
            m[p][p] = m[p][p] - t * apq
            m[q][q] = m[q][q] + t * apq
            m[p][q] = m[q][p] = zero
            m[r][p] = m[p][r] = c * arp - s * arq
            m[r][q] = m[q][r] = s * arp + c * arq
            for k in range(3):                              # V <- V J: columns p and q rotate
                vkp, vkq = v[k][p], v[k][q]
                v[k][p] = c * vkp - s * vkq
                v[k][q] = s * vkp + c * vkq
    evals = torch.stack([m[0][0], m[1][1], m[2][2]], 1)
    evecs = torch.stack([torch.stack(row, 1) for row in v], 1)
    return evals, evecs


def covariances(quats: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) covariance R diag(s^2) R^T of each splat."""
    r = quat_to_matrix(quats)
    s2 = torch.exp(2 * log_scales)
    return (r * s2[:, None, :]) @ r.transpose(1, 2)


def ink(log_scales: torch.Tensor, opacity: torch.Tensor) -> torch.Tensor:
    """Merge weight: opacity times 1-sigma surface area (float64)."""
    s = torch.exp(log_scales.double()).clamp_min(1e-12)
    return torch.sigmoid(opacity.double()) * ellipsoid_area(s) + 1e-30


def merge_pairs(t: dict[str, torch.Tensor], a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
    """Moment-match splats a[i] and b[i] into one splat each (float64 inside, float32 out)."""
    wa, wb = ink(t["log_scales"][a], t["opacity"][a]), ink(t["log_scales"][b], t["opacity"][b])
    total = wa + wb
    pa, pb = (wa / total)[:, None], (wb / total)[:, None]
    ma, mb = t["means"][a].double(), t["means"][b].double()
    mu = pa * ma + pb * mb
    da, db = ma - mu, mb - mu
    cov = (pa[:, :, None] * (da[:, :, None] * da[:, None, :] + covariances(t["quats"][a].double(), t["log_scales"][a].double()))
           + pb[:, :, None] * (db[:, :, None] * db[:, None, :] + covariances(t["quats"][b].double(), t["log_scales"][b].double())))
    cov = cov + 1e-12 * torch.eye(3, dtype=cov.dtype, device=cov.device)
    evals, evecs = eigh3(cov)
    flip = torch.linalg.det(evecs) < 0                      # a reflection: turn it into a rotation
    evecs = torch.where(flip[:, None, None], evecs * torch.tensor([1.0, 1.0, -1.0], dtype=evecs.dtype,
                                                                   device=evecs.device), evecs)
    scales = evals.clamp_min(1e-30).sqrt()
    alpha = (total / ellipsoid_area(scales)).clamp(1e-7, 1 - 1e-7)
    out = {
        "means": mu.float(),
        "quats": matrix_to_quat(evecs).float(),
        "log_scales": scales.log().float(),
        "opacity": torch.logit(alpha).float(),
    }
    for k in ("f_dc", "f_rest"):
        out[k] = (pa * t[k][a].double() + pb * t[k][b].double()).float()
    return out


def _link_costs(w: torch.Tensor, means: torch.Tensor, colour: torch.Tensor, walk: torch.Tensor,
                segment: torch.Tensor, rho2: float) -> torch.Tensor:
    """Ward cost of each link walk[i] - walk[i+1] (inf across segments); w, means and colour
    (f_dc times SH_C0) are float64, computed once per pairing."""
    a, b = walk[:-1], walk[1:]
    wa, wb = w[a], w[b]
    d2 = ((means[a] - means[b]) ** 2).sum(1)
    c2 = ((colour[a] - colour[b]) ** 2).sum(1)
    cost = wa * wb / (wa + wb) * (d2 + rho2 * c2)
    return torch.where(segment[a] == segment[b], cost, torch.full_like(cost, float("inf")))


def pair_up(t: dict[str, torch.Tensor], segment: torch.Tensor, pairs_wanted: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint pairs (a, b) of cheap neighbours along a Morton walk, at most pairs_wanted."""
    dev = segment.device
    walk = curve_order(t["means"], "morton", runs=segment)     # segment by segment, along the curve
    rho2 = float(torch.exp(t["log_scales"].double().mean(1)).median()) ** 2
    w = ink(t["log_scales"], t["opacity"])
    means = t["means"].double()
    colour = t["f_dc"].double() * SH_C0
    firsts, seconds = [], []
    taken = 0
    for _ in range(MAX_ROUNDS):
        if taken >= pairs_wanted or len(walk) < 2:
            break
        cost = _link_costs(w, means, colour, walk, segment, rho2)
        inf = torch.full((1,), float("inf"), dtype=cost.dtype, device=dev)
        left = torch.cat([inf, cost[:-1]])
        right = torch.cat([cost[1:], inf])
        pick = torch.isfinite(cost) & (cost < left) & (cost <= right)
        idx = torch.nonzero(pick).squeeze(1)
        if len(idx) == 0:
            break
        if len(idx) > pairs_wanted - taken:                # only the cheapest of the last round
            idx = idx[torch.argsort(cost[idx])[: pairs_wanted - taken]]
        firsts.append(walk[idx])
        seconds.append(walk[idx + 1])
        taken += len(idx)
        gone = torch.zeros(len(walk), dtype=torch.bool, device=dev)
        gone[idx] = True
        gone[idx + 1] = True
        walk = walk[~gone]
    if not firsts:
        empty = torch.zeros(0, dtype=torch.long, device=dev)
        return empty, empty
    return torch.cat(firsts), torch.cat(seconds)


def decimate(t: dict[str, torch.Tensor], segment: Optional[torch.Tensor] = None,
             keep: float = 0.5) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """About `keep` of the splats in t (float tensors as in `Splats`), merged in pairs within
    each segment. Returns (the coarser splats grouped by segment, each one's segment)."""
    n = len(t["means"])
    dev = t["means"].device
    segment = torch.zeros(n, dtype=torch.long, device=dev) if segment is None else segment
    a, b = pair_up(t, segment, max(0, n - int(round(n * keep))))
    used = torch.zeros(n, dtype=torch.bool, device=dev)
    used[a] = True
    used[b] = True
    alone = torch.nonzero(~used).squeeze(1)
    merged = merge_pairs(t, a, b)
    out = {k: torch.cat([t[k][alone], merged[k]]) for k in ATTRIBUTES}
    seg = torch.cat([segment[alone], segment[a]])
    by_segment = torch.argsort(seg, stable=True)
    return {k: v[by_segment] for k, v in out.items()}, seg[by_segment]
