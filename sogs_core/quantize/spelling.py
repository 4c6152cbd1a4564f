"""Which of a splat's 24 equivalent spellings the file stores.

An ellipsoid looks the same after any of the 24 rotations of a cube about its own axes, provided
its three scales are permuted with the axes: (q, s) and (q x p, s permuted by p) are one Gaussian.
Trained scenes spell their rotations at random among these, which costs the encoder bits for a
choice nobody sees. Spelling each splat with the rotation nearest the identity (largest |w|)
gives quaternions close to (1, 0, 0, 0): their smallest-three bytes sit near the middle, and w,
always the largest, is rebuilt precisely (bench/NOTES.md, session 19: fewer bytes and a better
render on every trained scene).

A rotation that already sits on the SOG grid (a decoded SOG as input) is only flipped by the
180-degree turns, which permute and negate its components and so keep it exactly on the grid.
"""
from __future__ import annotations

import itertools
import math
from typing import Callable

import torch

from sogs_core.formats.sog.codes import decode_quats, encode_quats
from sogs_core.model.rotations import quat_mul, quat_to_matrix


def _cube_rotations() -> torch.Tensor:
    """(24, 4) unit quaternions w, x, y, z of the rotations of a cube, one sign each (the first
    nonzero component positive): the identity and the 180-degree turns first, then the
    120-degree and the 90-degree turns."""
    half, root = 0.5, 1.0 / math.sqrt(2.0)
    quats = [tuple(float(i == j) for j in range(4)) for i in range(4)]
    quats += [(half, half * a, half * b, half * c) for a, b, c in itertools.product((1, -1), repeat=3)]
    for i, j in itertools.combinations(range(4), 2):
        for sign in (1, -1):
            q = [0.0] * 4
            q[i], q[j] = root, sign * root
            quats.append(tuple(q))
    return torch.tensor(quats, dtype=torch.float64)


CUBE = _cube_rotations()
#: rows of CUBE that only flip axes (the identity and the three 180-degree turns)
FLIPS = 4


def _axis_maps() -> torch.Tensor:
    """(24, 3): under CUBE[k], the new axis i is the old axis AXES[k, i], whose scale it takes."""
    return quat_to_matrix(CUBE).abs().argmax(1)


AXES = _axis_maps()
#: a quaternion times this is its conjugate (the vector part negated)
CONJUGATE = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64)
#: (q x CUBE[k]).w = q . CUBE_CONJ[k]
CUBE_CONJ = CUBE * CONJUGATE
#: splats respelled per pass (bounds the (n, 24) score matrix)
CHUNK = 1 << 20


def on_sog_grid(quats: torch.Tensor, tolerance: float = 1e-5) -> torch.Tensor:
    """(N,) bool: the rotation is one the SOG's 8-bit smallest-three codes spell exactly (each
    component within `tolerance` of its code's decoded value). On a CPU only the rotations that
    pass `_near_grid` are encoded and decoded to check: a trained scene's are nearly all off it,
    and the check is most of the respelling's time there (bench/NOTES.md). On a GPU every
    rotation is checked, with no read-back."""
    q = quats.double()
    q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)
    if q.is_cuda:
        return _round_trips(q, tolerance)
    out = torch.zeros(len(q), dtype=torch.bool, device=q.device)
    rows = torch.nonzero(_near_grid(q, tolerance)).squeeze(1)
    if len(rows):
        out[rows] = _round_trips(q.index_select(0, rows), tolerance)
    return out


def _round_trips(q: torch.Tensor, tolerance: float) -> torch.Tensor:
    """Unit rotations (float64) that come back from their 8-bit codes within `tolerance` (or
    negated: the same rotation)."""
    back = decode_quats(encode_quats(q)).double()
    return torch.minimum((q - back).abs().amax(1), (q + back).abs().amax(1)) <= tolerance


def _near_grid(q: torch.Tensor, tolerance: float) -> torch.Tensor:
    """A necessary condition for `_round_trips`, without encoding: at least three components c
    (the codes store (c sqrt2 + 1) 127.5 rounded, or 255 minus it for the other sign; the
    largest is rebuilt, not stored) within tolerance x sqrt2 x 127.5 of a whole code, with a
    margin for float32, which is what makes it cheap: column by column, no row reduction."""
    limit = tolerance * math.sqrt(2.0) * 127.5 * 1.01 + 1e-4
    near = None
    for c in q.float().T.contiguous().unbind(0):
        code = c * (math.sqrt(2.0) * 127.5) + 127.5
        close = ((code - code.round()).abs() <= limit).to(torch.uint8)
        near = close if near is None else near + close
    return near >= 3


def _respelled(quats: torch.Tensor, log_scales: torch.Tensor, pick: Callable[[torch.Tensor, slice], torch.Tensor],
               unit: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Each splat respelled by the CUBE rotation `pick(quaternions (n, 4) float64, their rows)`
    chooses for it (made unit length first with `unit`), CHUNK splats at a time; same dtypes out."""
    if len(quats) == 0:
        return quats, log_scales
    cube, axes = CUBE.to(quats.device), AXES.to(quats.device)
    out_q, out_s = [], []
    for lo in range(0, len(quats), CHUNK):
        rows = slice(lo, lo + CHUNK)
        q = quats[rows].double()
        if unit:
            q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)
        k = pick(q, rows)
        out_q.append(quat_mul(q, cube.index_select(0, k)).to(quats.dtype))     # not cube[k]: half the time
        out_s.append(log_scales[rows].gather(1, axes.index_select(0, k)))
    return torch.cat(out_q), torch.cat(out_s)


def _first_max(a: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The largest of four (n,) columns and its column index (the first of equals), by a
    tournament of elementwise ops (an argmax over rows of four is several times slower on a CPU)."""
    m_low, m_high = torch.maximum(a[0], a[1]), torch.maximum(a[2], a[3])
    low, high = (a[1] > a[0]).long(), (a[3] > a[2]).long() + 2
    return torch.maximum(m_low, m_high), torch.where(m_high > m_low, high, low)


def nearest_identity_rows(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(n,) int64 twice: for unit rotations q (n, 4) w,x,y,z, the CUBE row k whose q x CUBE[k]
    has the largest |w|, and the best of the flips alone (rows 0-3: what a rotation on the SOG
    grid may take), in closed form. |(q x c).w| = |q . conj(c)|, and with a = |q| each family of
    CUBE has one best member: an axis (rows 0-3) reaches max a; a half turn's (+-1/2)^4 (rows
    4-11) reaches sum(a) / 2 with the signs of q; a 90-degree turn (rows 12-23) reaches
    (a_i + a_j) / sqrt(2) on q's two largest components. Ties go to the lower row, as an argmax
    over all 24 scores would (the 24-column product was most of the respelling's time on a CPU).
    Column by column: elementwise ops on contiguous columns are the cheap ones on a CPU."""
    q32 = q.float()
    c = q32.T.contiguous().unbind(0)
    a = [v.abs() for v in c]
    top, first = _first_max(a)
    second_value, second = _first_max([v.masked_fill(first == k, -1.0) for k, v in enumerate(a)])
    axis_score, half_score = top, (a[0] + a[1] + a[2] + a[3]) * 0.5
    root_score = (top + second_value) * math.sqrt(0.5)
    neg, nonzero = [v < 0 for v in c], [v != 0 for v in c]
    # half turns: s_k = -sign(q_k) sign(q_0) (+1 where q_k is 0); where q_0 is 0, the sign that
    # makes the first nonzero s_k +1 (the lower row of the two equal ones)
    later = torch.where(nonzero[1], ~neg[1], torch.where(nonzero[2], ~neg[2], ~neg[3]))
    lead = torch.where(nonzero[0], neg[0], later)
    minus = [((neg[k] == lead) & nonzero[k]).long() for k in (1, 2, 3)]
    half_row = 4 * minus[0] + 2 * minus[1] + minus[2] + 4
    # 90-degree turns about the pair (i, j), i < j: sign -1 where +1 would make the product
    # smaller (conj negates every component but w)
    i, j = torch.minimum(first, second), torch.maximum(first, second)
    qi, qj = q32.gather(1, i[:, None]).squeeze(1), q32.gather(1, j[:, None]).squeeze(1)
    flip = (qi != 0) & (qj != 0) & (((qi < 0) == (qj < 0)) == (i == 0))
    root_row = PAIR_ROW.to(q.device).index_select(0, 4 * i + j) + flip.long()
    take_axis = (axis_score >= half_score) & (axis_score >= root_score)
    return torch.where(take_axis, first, torch.where(half_score >= root_score, half_row, root_row)), first


#: at 4 i + j, the CUBE row of the 90-degree turn about the pair (i, j), i < j, with sign +1:
#: `_cube_rotations` puts them last, in combinations(range(4), 2) order, two signs each
PAIR_ROW = torch.full((16,), -1, dtype=torch.int64)
for _n, (_i, _j) in enumerate(itertools.combinations(range(4), 2)):
    PAIR_ROW[4 * _i + _j] = len(CUBE) - 12 + 2 * _n


def respell_near_identity(quats: torch.Tensor, log_scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The same Gaussians, each spelled with its rotation nearest the identity (only axis flips
    for rotations already on the SOG grid). (N, 4) w,x,y,z and (N, 3) in, same dtypes out."""

    def nearest_identity(q: torch.Tensor, rows: slice) -> torch.Tensor:
        k, flip = nearest_identity_rows(q)
        if q.is_cuda:                                          # no read-back: every row checked
            return torch.where((k >= FLIPS) & on_sog_grid(q), flip, k)
        turned = torch.nonzero(k >= FLIPS).squeeze(1)          # only these can leave the grid
        if len(turned):
            k[turned] = torch.where(on_sog_grid(q.index_select(0, turned)), flip.index_select(0, turned),
                                    k.index_select(0, turned))
        return k

    return _respelled(quats, log_scales, nearest_identity, unit=True)


def align_spelling(reference: torch.Tensor, quats: torch.Tensor,
                   log_scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`quats`/`log_scales` respelled to the spelling nearest `reference`'s rotation, so that a
    decoded file can be compared attribute by attribute with its input whatever spelling it
    stores. (q x p) . r = p . (conj(q) x r): one (n, 24) product per chunk."""
    cube, conjugate = CUBE.to(quats.device), CONJUGATE.to(quats.device)

    def nearest_reference(q: torch.Tensor, rows: slice) -> torch.Tensor:
        return (quat_mul(q * conjugate, reference[rows].double()) @ cube.T).abs().argmax(1)

    return _respelled(quats, log_scales, nearest_reference, unit=False)
