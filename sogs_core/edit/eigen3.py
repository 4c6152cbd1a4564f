"""Eigen-decomposition of many symmetric 3x3 matrices at once, in closed form: what a merge needs to
turn a pair's merged covariance back into scales and a rotation.

Why closed form: a batch of cyclic Jacobi sweeps was half of a CPU merge's time and a few
hundred kernel launches on a GPU; the trigonometric solution (Smith 1961) is a few dozen
elementwise operations whatever the matrix. Why not torch.linalg.eigh: its batched CUDA path asks
for workspace that grows past the GPU's memory for a large batch (bench/NOTES.md). Robustness
(after Eberly's "A Robust Eigensolver for 3 x 3 Symmetric Matrices"): the eigenvector of the
eigenvalue farther from the other two is found first, as the largest cross product of two rows of
A - lambda I (rank two there); the second comes from the 2x2 problem in the plane orthogonal to
it; the third is their cross product. So two equal eigenvalues, or three, still give an
orthonormal basis, and no division is by a value near zero. The eigenvalues returned are the
vectors' Rayleigh quotients, accurate for flat matrices too.
"""
from __future__ import annotations

import math

import torch


def _cross(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _dot(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _unit(v: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    norm = torch.sqrt(_dot(v, v)).clamp_min(1e-300)
    return tuple(c / norm for c in v)


def _pick(cands: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """Per row, the candidate vector with the largest norm."""
    norms = torch.stack([_dot(c, c) for c in cands], 1)
    best = norms.argmax(1, keepdim=True)
    return tuple(torch.stack([c[k] for c in cands], 1).gather(1, best).squeeze(1) for k in range(3))


def _null_vector(rows: tuple[tuple[torch.Tensor, ...], ...]) -> tuple[torch.Tensor, ...]:
    """A unit vector orthogonal to the three rows of a rank-two matrix: the largest of the
    rows' cross products (the x axis where every row is zero)."""
    r0, r1, r2 = rows
    v = _pick([_cross(r0, r1), _cross(r0, r2), _cross(r1, r2)])
    none = _dot(v, v) < 1e-300
    one, zero = torch.ones_like(v[0]), torch.zeros_like(v[0])
    v = (torch.where(none, one, v[0]), torch.where(none, zero, v[1]), torch.where(none, zero, v[2]))
    return _unit(v)


def _orthonormal_pair(v: tuple[torch.Tensor, ...]) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Two unit vectors that make an orthonormal basis with the unit vector v."""
    zero = torch.zeros_like(v[0])
    x_big = v[0].abs() > v[1].abs()
    # orthogonal to v in the plane of its two largest of (x, y) and z
    u = (torch.where(x_big, -v[2], zero), torch.where(x_big, zero, v[2]), torch.where(x_big, v[0], -v[1]))
    u = _unit(u)
    return u, _cross(v, u)


def eigh3_entries(entries: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(eigenvalues (N, 3) largest first, eigenvectors as columns (N, 3, 3), orthonormal) of the
    symmetric matrices whose six distinct entries (xx, yy, zz, xy, xz, yz) are (N,) tensors."""
    xx, yy, zz, xy, xz, yz = entries
    q = (xx + yy + zz) / 3
    off = xy * xy + xz * xz + yz * yz
    dx, dy, dz = xx - q, yy - q, zz - q
    p = torch.sqrt(((dx * dx + dy * dy + dz * dz) + 2 * off) / 6)
    flat = p < 1e-300                                   # a multiple of the identity
    ps = torch.where(flat, torch.ones_like(p), p)
    bx, by, bz, bxy, bxz, byz = dx / ps, dy / ps, dz / ps, xy / ps, xz / ps, yz / ps
    half_det = 0.5 * (bx * (by * bz - byz * byz) - bxy * (bxy * bz - byz * bxz) + bxz * (bxy * byz - by * bxz))
    phi = torch.acos(half_det.clamp(-1.0, 1.0)) / 3
    top = q + 2 * p * torch.cos(phi)
    low = q + 2 * p * torch.cos(phi + 2 * math.pi / 3)
    mid = 3 * q - top - low
    # the eigenvalue farther from the other two first: its A - lambda I has rank two
    top_first = (top - mid) >= (mid - low)
    first = torch.where(top_first, top, low)
    rows = ((xx - first, xy, xz), (xy, yy - first, yz), (xz, yz, zz - first))
    v_first = _null_vector(rows)
    # the middle eigenvalue's vector in the plane orthogonal to it: a 2x2 problem
    u, w = _orthonormal_pair(v_first)

    def a_times(v: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return (xx * v[0] + xy * v[1] + xz * v[2], xy * v[0] + yy * v[1] + yz * v[2], xz * v[0] + yz * v[1] + zz * v[2])

    au, aw = a_times(u), a_times(w)
    m00, m01, m11 = _dot(u, au), _dot(u, aw), _dot(w, aw)
    # the middle eigenvalue anew from the 2x2 matrix, its root that is not near zero (the
    # cosine formula's is ~1e-8 of the largest off, too much for a flat matrix's plane)
    centre, radius = 0.5 * (m00 + m11), torch.sqrt((0.5 * (m00 - m11)) ** 2 + m01 * m01)
    mid = torch.where(top_first, centre + radius, centre - radius)
    # (m01, mid - m00) and (mid - m11, m01) both solve the 2x2 system; the longer one is exact
    c1 = (m01, mid - m00)
    c2 = (mid - m11, m01)
    use1 = (c1[0] * c1[0] + c1[1] * c1[1]) >= (c2[0] * c2[0] + c2[1] * c2[1])
    s, t = torch.where(use1, c1[0], c2[0]), torch.where(use1, c1[1], c2[1])
    norm = torch.sqrt(s * s + t * t)
    none = norm < 1e-300                                # the plane is an eigenspace: any vector
    s = torch.where(none, torch.ones_like(s), s / norm.clamp_min(1e-300))
    t = torch.where(none, torch.zeros_like(t), t / norm.clamp_min(1e-300))
    v_mid = tuple(s * uk + t * wk for uk, wk in zip(u, w))
    v_last = _cross(v_first, v_mid)
    # the other two eigenvalues again as Rayleigh quotients of their vectors (the middle one is
    # already the 2x2 root): the angle's error enters squared, so a flat matrix's smallest
    # eigenvalue stays right (the cosine formula's error is ~1e-8 of the largest, more than that
    # eigenvalue itself)
    e_first, e_last = _dot(v_first, a_times(v_first)), _dot(v_last, a_times(v_last))
    top, low = torch.where(top_first, e_first, e_last), torch.where(top_first, e_last, e_first)
    # columns largest eigenvalue first
    v_top = tuple(torch.where(top_first, a, b) for a, b in zip(v_first, v_last))
    v_low = tuple(torch.where(top_first, b, a) for a, b in zip(v_first, v_last))
    one, zero = torch.ones_like(p), torch.zeros_like(p)
    v_top = tuple(torch.where(flat, e, c) for e, c in zip((one, zero, zero), v_top))
    v_mid = tuple(torch.where(flat, e, c) for e, c in zip((zero, one, zero), v_mid))
    v_low = tuple(torch.where(flat, e, c) for e, c in zip((zero, zero, one), v_low))
    evals = torch.stack([torch.where(flat, q, top), torch.where(flat, q, mid), torch.where(flat, q, low)], 1)
    evecs = torch.stack([torch.stack(row, 1) for row in zip(v_top, v_mid, v_low)], 1)
    return evals, evecs
