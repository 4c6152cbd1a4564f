"""PlayCanvas "compressed PLY" (SuperSplat exports, `splat-transform x.compressed.ply`).

Layout: `element chunk` (one row of float bounds per 256 splats: min/max of position, of
log-scale and optionally of colour), `element vertex` with four uint32 per splat
(`packed_position` 11/10/11 bits, `packed_rotation` 2-bit index of the largest component + three
10-bit others, `packed_scale` 11/10/11 bits, `packed_color` RGBA 8 bits each), and an optional
`element sh` of uint8 `f_rest_*`. Each value is linearly interpolated between its chunk's bounds;
the arithmetic follows splat-transform's reader operation for operation in float64, so the
floats we get equal what `splat-transform x.compressed.ply x.ply` writes.
"""
from __future__ import annotations

import math

import numpy as np

from sogs_core.model.errors import PlyError
from sogs_core.model.splats import Splats
from sogs_core.formats.checks import finish, need_count
from sogs_core.formats.ply.header import PlyHeader, locate

CHUNK_SPLATS = 256
SH_C0 = 0.28209479177387814
ROT_NORM = 1.0 / (math.sqrt(2.0) * 0.5)
BOUNDS = ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
          "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z")
COLOR_BOUNDS = ("min_r", "min_g", "min_b", "max_r", "max_g", "max_b")
PACKED = ("packed_position", "packed_rotation", "packed_scale", "packed_color")


def _unorm(v: np.ndarray, shift: int, bits: int) -> np.ndarray:
    mask = (1 << bits) - 1
    return ((v >> np.uint32(shift)) & np.uint32(mask)).astype(np.float64) / mask


def _lerp(lo: np.ndarray, hi: np.ndarray, t: np.ndarray) -> np.ndarray:
    return lo * (1.0 - t) + hi * t


def _packed_xyz(word: np.ndarray, lo: list[np.ndarray], hi: list[np.ndarray]) -> np.ndarray:
    """11/10/11-bit x, y, z between per-splat bounds -> (N, 3) float32."""
    out = np.empty((len(word), 3), np.float32)
    for axis, (shift, bits) in enumerate(((21, 11), (11, 10), (0, 11))):
        out[:, axis] = _lerp(lo[axis], hi[axis], _unorm(word, shift, bits))
    return out


def _rotations(word: np.ndarray) -> np.ndarray:
    a = (_unorm(word, 20, 10) - 0.5) * ROT_NORM
    b = (_unorm(word, 10, 10) - 0.5) * ROT_NORM
    c = (_unorm(word, 0, 10) - 0.5) * ROT_NORM
    m = np.sqrt(np.maximum(0.0, 1.0 - (a * a + b * b + c * c)))
    largest = (word >> np.uint32(30)).astype(np.intp)
    q = np.empty((len(word), 4), np.float64)
    others = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])[largest]
    rows = np.arange(len(word))
    q[rows, largest] = m
    for j, v in enumerate((a, b, c)):
        q[rows, others[:, j]] = v
    return q.astype(np.float32)


def decode_compressed(buf: memoryview, name: str, header: PlyHeader, check: bool = True) -> Splats:
    """The splats of a compressed PLY whose header is already parsed."""
    els = locate(buf, name, header, tuple(e for e, _, _ in header.elements if e in ("chunk", "vertex", "sh")))
    chunk, vertex, sh = els.get("chunk"), els.get("vertex"), els.get("sh")
    if chunk is None or vertex is None:
        raise PlyError(name, "compressed PLY without a 'chunk' and a 'vertex' element")
    n = vertex.count
    need_count(name, n)
    if n == 0:
        raise PlyError(name, "zero splats (element vertex 0)")
    for prop in PACKED:
        if prop not in (vertex.dtype.names or ()) or vertex.dtype[prop].kind != "u" or vertex.dtype[prop].itemsize != 4:
            raise PlyError(name, f"compressed PLY vertex needs 'property uint {prop}'")
    missing = [p for p in BOUNDS if p not in (chunk.dtype.names or ())]
    if missing:
        raise PlyError(name, f"compressed PLY chunk element lacks {', '.join(missing)}")
    n_chunks = -(-n // CHUNK_SPLATS)
    if chunk.count < n_chunks:
        raise PlyError(name, f"{n} splats need {n_chunks} chunks of {CHUNK_SPLATS} but the file has {chunk.count}")
    n_rest = 0
    if sh is not None:
        if sh.count != n:
            raise PlyError(name, f"element sh has {sh.count} rows for {n} splats")
        while f"f_rest_{n_rest}" in (sh.dtype.names or ()):
            n_rest += 1
        if n_rest not in (0, 9, 24, 45) or len(sh.dtype.names) != n_rest:
            raise PlyError(name, f"element sh has {len(sh.dtype.names)} properties; expected f_rest_0.. for "
                                 "SH degree 1..3 (9, 24 or 45)")

    bounds = chunk.rows(buf)
    which = np.arange(n) // CHUNK_SPLATS

    def per_splat(prop: str) -> np.ndarray:
        return bounds[prop].astype(np.float64)[which]

    v = vertex.rows(buf)
    words = {p: v[p].astype(np.uint32) for p in PACKED}
    means = _packed_xyz(words["packed_position"], [per_splat(p) for p in BOUNDS[0:3]],
                        [per_splat(p) for p in BOUNDS[3:6]])
    log_scales = _packed_xyz(words["packed_scale"], [per_splat(p) for p in BOUNDS[6:9]],
                             [per_splat(p) for p in BOUNDS[9:12]])
    color = words["packed_color"]
    with np.errstate(divide="ignore"):
        opacity = (-np.log(1.0 / _unorm(color, 0, 8) - 1.0)).astype(np.float32)
    has_colour_bounds = all(p in (chunk.dtype.names or ()) for p in COLOR_BOUNDS)
    f_dc = np.empty((n, 3), np.float32)
    for ch, shift in enumerate((24, 16, 8)):
        t = _unorm(color, shift, 8)
        if has_colour_bounds:
            t = _lerp(per_splat(COLOR_BOUNDS[ch]), per_splat(COLOR_BOUNDS[3 + ch]), t)
        f_dc[:, ch] = (t - 0.5) / SH_C0
    f_rest = np.zeros((n, 0), np.float32)
    if n_rest:
        raw = np.stack([sh.rows(buf)[f"f_rest_{i}"] for i in range(n_rest)], axis=1).astype(np.float64)
        nrm = np.where(raw == 0, 0.0, np.where(raw == 255, 1.0, (raw + 0.5) / 256.0))
        f_rest = ((nrm - 0.5) * 8.0).astype(np.float32)
    splats = Splats(means=means, quats=_rotations(words["packed_rotation"]), log_scales=log_scales,
                    f_dc=f_dc, opacity=opacity, f_rest=f_rest)
    return finish(splats, name, PlyError, check)
