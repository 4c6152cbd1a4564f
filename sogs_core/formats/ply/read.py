"""The INRIA 3DGS PLY (binary, float properties `x`..`rot_3`, `f_rest_*`) -> `Splats`; a
compressed PLY (same header, `header.is_compressed`) is handed to its own reader.

The body is viewed, not copied, through a numpy structured dtype (`header.Element.rows`).
"""
from __future__ import annotations

import numpy as np

from sogs_core.model.errors import PlyError
from sogs_core.model.splats import SH_COEFFS_PER_CHANNEL, Splats
from sogs_core.formats.checks import finish, need_count
from sogs_core.formats.ply.compressed import decode_compressed
from sogs_core.formats.ply.header import Element, PlyHeader, is_compressed, locate, parse_header
from sogs_core.formats.row_blocks import contiguous_float32
from sogs_core.formats.source import Source, load

REQUIRED = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
            "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]


def read_ply(source: Source, name: str | None = None, check: bool = True) -> Splats:
    """Read a 3DGS PLY (path or bytes) into `Splats`; raises `PlyError` on any malformed input.

    Handles binary little/big-endian, float or double properties, SH degree 0..3 (from the number
    of `f_rest_*`), extra properties and extra elements (skipped if fixed-size). A PlayCanvas
    compressed PLY is handed to its own reader.
    """
    buf, name = load(source, name, PlyError)
    return decode_ply(buf, name, parse_header(buf, name), check)


def decode_ply(buf: memoryview, name: str, header: PlyHeader, check: bool = True) -> Splats:
    """The splats of a PLY whose header is parsed: INRIA, or compressed (handed to its reader);
    `check`: refuse invalid values (`checks.finish`)."""
    if is_compressed(header):
        return decode_compressed(buf, name, header, check)
    vertex = locate(buf, name, header, ("vertex",)).get("vertex")
    if vertex is None:
        raise PlyError(name, "no 'vertex' element in the header")
    n_rest = check_vertex(vertex, name)
    need_count(name, vertex.count)
    return splats_from_rows(vertex.rows(buf), n_rest, name, check)


def check_vertex(vertex: Element, name: str) -> int:
    """Refuse a vertex element that is not 3DGS; returns its number of f_rest properties."""
    names = set(vertex.dtype.names or ())
    missing = [p for p in REQUIRED if p not in names]
    if missing:
        raise PlyError(name, f"missing property: {', '.join(missing)} (not a 3DGS PLY?)")
    if vertex.count == 0:
        raise PlyError(name, "zero splats (element vertex 0)")
    n_rest = 0
    while f"f_rest_{n_rest}" in names:
        n_rest += 1
    if n_rest // 3 not in SH_COEFFS_PER_CHANNEL or n_rest % 3:
        raise PlyError(name, f"{n_rest} f_rest properties do not match SH degree 0..3 (0, 9, 24 or 45)")
    return n_rest


def splats_from_rows(body: np.ndarray, n_rest: int, name: str, check: bool = True) -> Splats:
    """Splats from PLY vertex rows (a contiguous structured array: the whole body viewed in
    place, or rows gathered from it, `PlyRows.gather`)."""
    dtype, count = body.dtype, len(body)
    field_types = {dtype.fields[f][0] for f in dtype.names}
    if len(field_types) == 1:
        # Every property has one type (the usual all-float file): view the body as a 2-D array and
        # copy each attribute in one pass (a run of columns is one strided copy). Copying column by
        # column instead walks the whole body once per property (62 passes for SH3).
        base = field_types.pop()
        table = body.view(base).reshape(count, len(dtype.names))
        index = {f: i for i, f in enumerate(dtype.names)}

        def cols(prefix_names: list[str]) -> np.ndarray:
            idx = [index[p] for p in prefix_names]
            if not idx:
                return np.empty((count, 0), np.float32)
            if idx == list(range(idx[0], idx[0] + len(idx))):
                part = table[:, idx[0]:idx[0] + len(idx)]
            else:
                part = table[:, idx]
            return contiguous_float32(part)
    else:
        def cols(prefix_names: list[str]) -> np.ndarray:
            out = np.empty((count, len(prefix_names)), np.float32)
            for i, p in enumerate(prefix_names):
                out[:, i] = body[p]
            return out

    splats = Splats(
        means=cols(["x", "y", "z"]),
        quats=cols(["rot_0", "rot_1", "rot_2", "rot_3"]),
        log_scales=cols(["scale_0", "scale_1", "scale_2"]),
        f_dc=cols(["f_dc_0", "f_dc_1", "f_dc_2"]),
        opacity=cols(["opacity"])[:, 0].copy(),
        f_rest=cols([f"f_rest_{i}" for i in range(n_rest)]),
    )
    return finish(splats, name, PlyError, check)
