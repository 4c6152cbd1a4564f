"""Fewer splats by merging neighbours in pairs: the streamed SOG's coarser levels and `--max-splats`.

How (our method; the facts it rests on are public: splat-transform's decimation, the "moment
matching" of Gaussian mixtures and Runnalls' cost for reducing them):

* Who may merge with whom: each splat's neighbours along two Morton walks (the second over
  shifted positions, so a neighbour the first walk's jumps hide is found by the other), up to
  `WINDOWS` places either side (4 along the first walk, 3 along the second), inside one segment
  (a leaf of the chunk tree: a pair never crosses a chunk).
* What a merge costs: Runnalls' bound on the information a merge loses,
  (w_a + w_b) ln det S_ab - w_a ln det S_a - w_b ln det S_b over 2, with S the covariances (plus
  a floor of `COV_FLOOR` times the median splat size, so flat splats do not dominate) and S_ab
  the merged one; plus the colour's weighted difference, COLOUR_WEIGHT w_a w_b / (w_a + w_b)
  |c_a - c_b|^2 over the base colour (the SH coefficients too cost 16x the time and gained
  nothing measurable). Unlike Ward's cost (distance
  only), it keeps apart two splats of different shapes or orientations, which one ellipsoid
  cannot stand for.
* Which links are taken: a link that is the cheapest of both its splats (a mutual best) is
  taken, its splats leave, and again for `ROUNDS_PER_PASS` rounds; then the pairs are merged
  and the next pass starts over the new splats, merged ones included, until the target is met.
  Short passes matter: late rounds of one pass take ever worse pairs of leftovers, while a new
  pass lets a cheap merge grow a group of three or four (bench/NOTES.md has the measurements).
  Every step is a vectorised tensor operation: the same code on a GPU and a CPU.
* How a pair becomes one splat (moment matching): each splat weighs w = alpha * area (opacity
  times the surface area of its 1-sigma ellipsoid, Thomsen's formula), the "ink" it puts on the
  screen. The merged mean is the weighted mean; the merged covariance the weighted sum of
  (delta delta^T + Sigma_k) (the law of total variance), so the pair's extent is kept; its
  eigenvectors give the rotation and the square roots of its eigenvalues the scales. Opacity
  compensates for the larger splat: alpha = min(1, (w_a + w_b) / area_merged), the ink is kept
  unless that would need alpha > 1. Colour and every SH coefficient are weighted means.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from sogs_core.edit.eigen3 import eigh3_entries
from sogs_core.model.rotations import rotation_entries
from sogs_core.model.sh import SH_C0
from sogs_core.model.splats import ATTRIBUTES
from sogs_core.order.curves import curve_order

#: Thomsen's exponent for the surface area of an ellipsoid (relative error < 1.1 %)
THOMSEN_P = 1.6075
#: neighbours either side that a splat may pair with along each walk (one entry a walk): the second
#: walk's fourth neighbours added nothing on the shared scenes at 1/2, 1/4 and 1/8 of the splats
#: (render PSNR within 0.07 dB either way) for 14 % of the merge's time (bench/NOTES.md, session 31)
WINDOWS = (4, 3)
WALKS = len(WINDOWS)
#: where the second walk's positions are shifted to, as a fraction of the scene's extent
WALK_SHIFT = 0.37
#: mutual-best rounds in one pass, and passes at most (a pass that pairs nothing ends it too)
ROUNDS_PER_PASS = 3
MAX_PASSES = 32
#: the colour term's weight against the geometric one, and the covariance floor (in median
#: splat sizes); chosen by render PSNR on the shared scenes (bench/NOTES.md)
COLOUR_WEIGHT = 10.0
COV_FLOOR = 0.05


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


#: the six distinct entries of a symmetric 3x3 matrix, in the order `covariance_entries` gives and
#: `eigen3.eigh3_entries` takes them
ENTRIES = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


def covariance_entries(quats: torch.Tensor, log_scales: torch.Tensor) -> list[torch.Tensor]:
    """The six distinct entries (xx, yy, zz, xy, xz, yz) of each splat's covariance
    R diag(s^2) R^T, each an (N,) tensor. Entry by entry because (N, 3, 3) products of 3x3
    matrices cost a CPU 1.6x the time for the same values, bit for bit (bench/NOTES.md)."""
    r = rotation_entries(quats)
    s0, s1, s2 = torch.exp(2 * log_scales).unbind(1)
    return [r[i][0] * s0 * r[j][0] + r[i][1] * s1 * r[j][1] + r[i][2] * s2 * r[j][2] for i, j in ENTRIES]


def covariances(quats: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) covariance R diag(s^2) R^T of each splat."""
    xx, yy, zz, xy, xz, yz = covariance_entries(quats, log_scales)
    return torch.stack([xx, xy, xz, xy, yy, yz, xz, yz, zz], 1).reshape(-1, 3, 3)


def ink(log_scales: torch.Tensor, opacity: torch.Tensor) -> torch.Tensor:
    """Merge weight: opacity times 1-sigma surface area (float64)."""
    s = torch.exp(log_scales.double()).clamp_min(1e-12)
    return torch.sigmoid(opacity.double()) * ellipsoid_area(s) + 1e-30


def merge_pairs(t: dict[str, torch.Tensor], a: torch.Tensor, b: torch.Tensor,
                w: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
    """Moment-match splats a[i] and b[i] into one splat each (float64 inside, float32 out).
    `w`: every splat's `ink`, where the caller has it already."""
    ta = {k: v.index_select(0, a) for k, v in t.items()}      # index_select: faster than v[a] on a CPU
    tb = {k: v.index_select(0, b) for k, v in t.items()}
    if w is None:
        w = ink(t["log_scales"], t["opacity"])
    wa, wb = w.index_select(0, a), w.index_select(0, b)
    total = wa + wb
    pa, pb = (wa / total)[:, None], (wb / total)[:, None]
    ma, mb = ta["means"].double(), tb["means"].double()
    mu = pa * ma + pb * mb
    da, db = ma - mu, mb - mu
    # the weighted sum of (d d^T + S) of the two, entry by entry, plus 1e-12 on the diagonal
    ca = covariance_entries(ta["quats"].double(), ta["log_scales"].double())
    cb = covariance_entries(tb["quats"].double(), tb["log_scales"].double())
    pa1, pb1 = pa[:, 0], pb[:, 0]
    cov = [pa1 * (da[:, i] * da[:, j] + ca[k]) + pb1 * (db[:, i] * db[:, j] + cb[k]) for k, (i, j) in enumerate(ENTRIES)]
    cov = [c + 1e-12 if i == j else c for c, (i, j) in zip(cov, ENTRIES)]
    evals, evecs = eigh3_entries(cov)
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
        out[k] = (pa * ta[k].double() + pb * tb[k].double()).float()
    return out


def _group_rows(scale_group: Optional[torch.Tensor]) -> Optional[list[torch.Tensor]]:
    """The splats of each group (index tensors, groups in order), found once a pass for the
    walks and the units alike; None without groups."""
    if scale_group is None:
        return None
    return [torch.nonzero(scale_group == g).squeeze(1) for g in torch.unique(scale_group).tolist()]


def _walks(means: torch.Tensor, segment: torch.Tensor,
           group_rows: Optional[list[torch.Tensor]] = None) -> list[torch.Tensor]:
    """The WALKS Morton walks whose neighbours may merge, each going segment by segment. With
    `group_rows` (`_group_rows`; segments numbered group after group), each group's walks are
    its own: a Morton grid over several groups orders a group's leaves differently, which cost
    0.5-1 dB on donut's coarser levels (bench/NOTES.md, session 24)."""
    if group_rows is None:
        extent = means.max(0).values - means.min(0).values
        return [curve_order(means + extent * (WALK_SHIFT * k), "morton", runs=segment) for k in range(WALKS)]
    own = [_walks(means.index_select(0, r), segment.index_select(0, r)) for r in group_rows]
    return [torch.cat([r.index_select(0, w[k]) for r, w in zip(group_rows, own)]) for k in range(WALKS)]


def _per_group(values: list[float], group_rows: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """(N,) tensor holding values[g] at group g's splats."""
    out = torch.empty_like(like)
    for value, rows in zip(values, group_rows):
        out[rows] = value
    return out


def _row_sum3(x: torch.Tensor) -> torch.Tensor:
    """(N, 3) -> (N,) sums of each row as two column adds: the same floats as `sum(1)` (and, over
    3, as `mean(1)`), which reduces rows of three in float64 several times slower on a CPU."""
    c0, c1, c2 = x.unbind(1)
    return c0 + c1 + c2


def _splat_columns(t: dict[str, torch.Tensor], w: torch.Tensor,
                   group_rows: Optional[list[torch.Tensor]] = None) -> torch.Tensor:
    """(14, N) float32, what each splat brings to a link's cost, one contiguous row per quantity:
    w, w ln det S, position, colour, w S (xx, yy, zz, xy, xz, yz). Lengths are in units of the
    median splat size and weights of the median weight (each group's own, with `group_rows`:
    several chunk groups decimated in one call, `chunk.build_levels_batch`), so every value is
    near 1 (the units' constants cancel out of Runnalls' difference within a segment). `w`:
    every splat's `ink`."""
    size_each = torch.exp(_row_sum3(t["log_scales"].double()) / 3)
    if group_rows is None:
        w = w / w.median()
        size = float(size_each.median())
        ls = t["log_scales"].double() - math.log(size)
    else:
        w = w / _per_group([float(w.index_select(0, r).median()) for r in group_rows], group_rows, w)
        medians = [float(size_each.index_select(0, r).median()) for r in group_rows]
        size = _per_group(medians, group_rows, size_each)[:, None]
        # math.log of each median: the same float the one-group path subtracts
        ls = t["log_scales"].double() - _per_group([math.log(m) for m in medians], group_rows, size_each)[:, None]
    packed = torch.empty((14, len(w)), dtype=torch.float32, device=w.device)   # rows written in place
    packed[0] = w
    packed[1] = w * _row_sum3(torch.log(torch.exp(2 * ls) + COV_FLOOR ** 2))
    packed[2:5] = (t["means"].double() / size).T
    packed[5:8] = (t["f_dc"].double() * SH_C0).T
    for k, entry in enumerate(covariance_entries(t["quats"].double(), ls)):
        packed[8 + k] = w * entry
    return packed


def _pair_costs(pa_: torch.Tensor, pb_: torch.Tensor) -> torch.Tensor:
    """Runnalls' cost plus the colour term of merging the splats of columns pa_[:, i] and
    pb_[:, i] (`_splat_columns` rows)."""
    floor2 = COV_FLOOR ** 2
    wa, wb = pa_[0], pb_[0]
    total = wa + wb
    inner = wa * wb / total
    dx, dy, dz = pa_[2] - pb_[2], pa_[3] - pb_[3], pa_[4] - pb_[4]
    outer = (dx * dx, dy * dy, dz * dz, dx * dy, dx * dz, dy * dz)
    # the merged covariance: (w_a S_a + w_b S_b + w_a w_b / W d d^T) / W (the law of total
    # variance), floored like every splat's
    xx, yy, zz, xy, xz, yz = ((pa_[8 + k] + pb_[8 + k] + inner * outer[k]) / total for k in range(6))
    xx, yy, zz = xx + floor2, yy + floor2, zz + floor2
    det = xx * (yy * zz - yz * yz) - xy * (xy * zz - yz * xz) + xz * (xy * yz - yy * xz)
    geometric = 0.5 * (total * torch.log(det.clamp_min(1e-30)) - pa_[1] - pb_[1])
    c0, c1, c2 = pa_[5] - pb_[5], pa_[6] - pb_[6], pa_[7] - pb_[7]
    return geometric + COLOUR_WEIGHT * inner * (c0 * c0 + c1 * c1 + c2 * c2)


def candidate_links(t: dict[str, torch.Tensor], segment: torch.Tensor, w: torch.Tensor,
                    scale_group: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(a, b, cost): links between splats up to WINDOWS places apart along each walk, inside one
    segment, and what each merge costs (`w`: every splat's `ink`). The splats' columns are laid out along each walk once,
    so a link's two ends are two slices of them, not two random gathers (the gathers were
    most of a CPU decimation's time: bench/NOTES.md, session 19)."""
    group_rows = _group_rows(scale_group)
    cols = _splat_columns(t, w, group_rows)
    firsts, seconds, costs = [], [], []
    for walk, window in zip(_walks(t["means"], segment, group_rows), WINDOWS):
        along = cols.index_select(1, walk)
        seg = segment.index_select(0, walk)
        for offset in range(1, window + 1):
            same = torch.nonzero(seg[:-offset] == seg[offset:]).squeeze(1)
            firsts.append(walk[:-offset].index_select(0, same))
            seconds.append(walk[offset:].index_select(0, same))
            costs.append(_pair_costs(along[:, :-offset], along[:, offset:]).index_select(0, same))
    return torch.cat(firsts), torch.cat(seconds), torch.cat(costs)


def _within_quota(links: torch.Tensor, cost: torch.Tensor, seg: torch.Tensor, quota: torch.Tensor) -> torch.Tensor:
    """The cheapest of `links` (segment `seg` each), at most quota[s] of segment s. Gathers by
    index_select, as everywhere on this path: faster than indexing on a CPU, same values."""
    by_cost = torch.argsort(cost)
    links, seg = links.index_select(0, by_cost), seg.index_select(0, by_cost)
    by_seg = torch.argsort(seg, stable=True)
    links, seg = links.index_select(0, by_seg), seg.index_select(0, by_seg)
    starts = torch.searchsorted(seg, seg, right=False)
    rank = torch.arange(len(seg), device=seg.device) - starts
    return links.index_select(0, torch.nonzero(rank < quota.index_select(0, seg)).squeeze(1))


def pair_up(t: dict[str, torch.Tensor], segment: torch.Tensor, quota: torch.Tensor, w: torch.Tensor,
            scale_group: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass: disjoint pairs (a, b), each link the cheapest of both its splats, at most
    quota[s] in segment s (the quota is lowered in place), in up to ROUNDS_PER_PASS rounds.
    `w`: every splat's `ink`."""
    n = len(t["means"])
    dev = segment.device
    a, b, cost = candidate_links(t, segment, w, scale_group)
    n_links = len(a)
    ids = torch.arange(n_links, device=dev)
    alive = torch.ones(n, dtype=torch.bool, device=dev)
    firsts, seconds = [], []
    for round_ in range(ROUNDS_PER_PASS):
        if int(quota.sum()) == 0 or len(a) == 0:
            break
        best = torch.full((n,), float("inf"), dtype=cost.dtype, device=dev)
        best.scatter_reduce_(0, a, cost, "amin")
        best.scatter_reduce_(0, b, cost, "amin")
        mutual = torch.nonzero((cost == best.index_select(0, a)) & (cost == best.index_select(0, b))).squeeze(1)
        # ties (a link found twice, equal costs): each splat keeps its first mutual link only
        # (above every link's id: ids keep their first round's numbers as links drop out)
        first = torch.full((n,), n_links, dtype=torch.long, device=dev)
        first.scatter_reduce_(0, a.index_select(0, mutual), ids.index_select(0, mutual), "amin")
        first.scatter_reduce_(0, b.index_select(0, mutual), ids.index_select(0, mutual), "amin")
        am, bm, im = a.index_select(0, mutual), b.index_select(0, mutual), ids.index_select(0, mutual)
        own = torch.nonzero((first.index_select(0, am) == im) & (first.index_select(0, bm) == im)).squeeze(1)
        mutual = mutual.index_select(0, own)
        mutual = _within_quota(mutual, cost.index_select(0, mutual), segment.index_select(0, a.index_select(0, mutual)),
                               quota)
        if len(mutual) == 0:
            break
        am, bm = a.index_select(0, mutual), b.index_select(0, mutual)
        quota -= torch.bincount(segment.index_select(0, am), minlength=len(quota))
        firsts.append(am)
        seconds.append(bm)
        if round_ == ROUNDS_PER_PASS - 1:
            break                                       # no round left to use the links that remain
        alive[am] = False
        alive[bm] = False
        # one nonzero for the four arrays (a boolean index would find the same rows four times)
        live = torch.nonzero(alive.index_select(0, a) & alive.index_select(0, b)).squeeze(1)
        a, b, cost, ids = (x.index_select(0, live) for x in (a, b, cost, ids))
    if not firsts:
        empty = torch.zeros(0, dtype=torch.long, device=dev)
        return empty, empty
    return torch.cat(firsts), torch.cat(seconds)


def _merge_pass(t: dict[str, torch.Tensor], segment: torch.Tensor, quota: torch.Tensor,
                segment_group: Optional[torch.Tensor] = None) -> tuple[dict[str, torch.Tensor], torch.Tensor, int]:
    """One pass of pairing and merging: (the splats, their segments, pairs merged)."""
    n = len(t["means"])
    dev = segment.device
    w = ink(t["log_scales"], t["opacity"])          # once: the links' costs and the merges both weigh by it
    a, b = pair_up(t, segment, quota, w, None if segment_group is None else segment_group.index_select(0, segment))
    if len(a) == 0:
        return t, segment, 0
    used = torch.zeros(n, dtype=torch.bool, device=dev)
    used[a] = True
    used[b] = True
    alone = torch.nonzero(~used).squeeze(1)
    merged = merge_pairs(t, a, b, w)
    out = {k: torch.cat([t[k].index_select(0, alone), merged[k]]) for k in ATTRIBUTES}
    return out, torch.cat([segment.index_select(0, alone), segment.index_select(0, a)]), len(a)


def decimate(t: dict[str, torch.Tensor], segment: Optional[torch.Tensor] = None,
             keep: float = 0.5, slack: float = 0.0,
             segment_group: Optional[torch.Tensor] = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """About `keep` (>= 0.5) of the splats of each segment of t (float tensors as in `Splats`),
    merged in pairs within the segment, pass after pass. `slack`: the fraction of the wanted
    merges that may stay undone, where "about" is enough (a streamed SOG's levels): the last
    pass goes over every splat for a few hundred pairs. `segment_group`: per segment, the group
    whose median splat size is its length unit (several chunk groups in one call); None: one
    unit for all. Returns (the coarser splats grouped by segment, each one's segment)."""
    n = len(t["means"])
    dev = t["means"].device
    segment = torch.zeros(n, dtype=torch.long, device=dev) if segment is None else segment
    counts = torch.bincount(segment) if n else torch.zeros(1, dtype=torch.long, device=dev)
    quota = (counts - torch.round(counts.double() * keep).long()).clamp_min(0)   # merges wanted per segment
    if segment_group is None:
        enough = int(slack * int(quota.sum()))
    else:           # each group stops where it would alone: its segments' quotas are zeroed
        group_of = segment_group[:len(quota)]       # (bincount stops at the last non-empty segment)
        groups = int(segment_group.max()) + 1
        per_group = lambda q: torch.zeros(groups, dtype=torch.long, device=dev).index_add_(0, group_of, q)  # noqa: E731
        enough_g = (slack * per_group(quota).double()).long()
        enough = 0
    for _ in range(MAX_PASSES):
        if segment_group is not None:
            quota[(per_group(quota) <= enough_g).index_select(0, group_of)] = 0
        if int(quota.sum()) <= enough:
            break
        t, segment, merged = _merge_pass(t, segment, quota, segment_group)
        if merged == 0:
            break
    by_segment = torch.argsort(segment, stable=True)
    return {k: v.index_select(0, by_segment) for k, v in t.items()}, segment.index_select(0, by_segment)
