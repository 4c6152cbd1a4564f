"""Read and write 3DGS PLY files (INRIA layout) with numpy alone.

The header is parsed by hand so that every way a file can be wrong becomes one `PlyError` that
names the file and the problem, and so that no array is sized from a header count before the
count is checked against the bytes actually present. The body is viewed, not copied, through a
numpy structured dtype: a 1M-splat file decodes in a fraction of a second.
"""
from __future__ import annotations

import os
import re
from typing import Union

import numpy as np

from .errors import PlyError
from .splats import SH_COEFFS_PER_CHANNEL, Splats

PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
REQUIRED = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
            "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
MAX_HEADER_BYTES = 1 << 20
#: +-inf opacity logits become +-this (sigmoid within 2e-9 of 0 or 1: the same opacity byte)
OPACITY_LOGIT_LIMIT = 20.0
#: -inf log-scales (a flat axis) become this (exp(-30) ~ 1e-13 scene units)
FLAT_LOG_SCALE = -30.0

Source = Union[str, os.PathLike, bytes, bytearray, memoryview]


def _load(source: Source, name: str | None) -> tuple[memoryview, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return memoryview(source), name or "<bytes>"
    path = os.fspath(source)
    try:
        with open(path, "rb") as f:
            return memoryview(f.read()), name or path
    except OSError as exc:
        raise PlyError(name or path, f"cannot open: {exc.strerror or exc}") from None


def _parse_header(buf: memoryview, name: str) -> tuple[str, list[tuple[str, int, list]], int]:
    """Returns (format, [(element, count, [(prop, dtype) | ('list', ...)])], body offset)."""
    head = bytes(buf[:MAX_HEADER_BYTES])
    if not head.startswith(b"ply"):
        raise PlyError(name, "not a PLY file (no 'ply' magic at the start)")
    end = re.search(rb"end_header\r?\n", head)
    if end is None:
        raise PlyError(name, "not a PLY file or truncated header (no 'end_header' line)")
    lines = head[: end.start()].decode("ascii", errors="replace").splitlines()
    fmt = None
    elements: list[tuple[str, int, list]] = []
    for raw in lines[1:]:
        words = raw.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            if len(words) < 2:
                raise PlyError(name, "malformed 'format' line")
            fmt = words[1]
        elif words[0] == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise PlyError(name, f"malformed element line: {raw.strip()!r}")
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property":
            if not elements:
                raise PlyError(name, "property before any element")
            if len(words) >= 2 and words[1] == "list":
                elements[-1][2].append(("list",) + tuple(words[2:]))
            elif len(words) == 3 and words[1] in PLY_TYPES:
                elements[-1][2].append((words[2], PLY_TYPES[words[1]]))
            else:
                raise PlyError(name, f"unsupported property line: {raw.strip()!r}")
        else:
            raise PlyError(name, f"unexpected header line: {raw.strip()!r}")
    if fmt is None:
        raise PlyError(name, "header has no 'format' line")
    return fmt, elements, end.end()


def read_ply(source: Source, name: str | None = None) -> Splats:
    """Read a 3DGS PLY (path or bytes) into `Splats`; raises `PlyError` on any malformed input.

    Handles binary little/big-endian, float or double properties, SH degree 0..3 (from the number
    of `f_rest_*`), extra properties and extra elements (skipped if fixed-size).
    """
    buf, name = _load(source, name)
    fmt, elements, offset = _parse_header(buf, name)
    if fmt == "ascii":
        raise PlyError(name, "ASCII PLY is not supported; convert it to binary first")
    if fmt not in ("binary_little_endian", "binary_big_endian"):
        raise PlyError(name, f"unknown PLY format {fmt!r}")
    endian = "<" if fmt == "binary_little_endian" else ">"

    vertex = None
    for el_name, count, props in elements:
        if any(p[0] == "list" for p in props):
            if el_name == "vertex":
                raise PlyError(name, "list properties in the vertex element are not supported")
            if vertex is None:
                raise PlyError(name, f"element {el_name!r} before 'vertex' has list properties; "
                                     "cannot locate the vertex data")
            continue
        dtype = np.dtype([(p, endian + t) for p, t in props])
        if el_name == "vertex":
            vertex = (count, dtype, offset)
            break
        if count * dtype.itemsize > len(buf) - offset:
            raise PlyError(name, f"truncated body: element {el_name!r} claims {count} rows")
        offset += count * dtype.itemsize
    if vertex is None:
        raise PlyError(name, "no 'vertex' element in the header")
    count, dtype, offset = vertex
    names = set(dtype.names or ())
    missing = [p for p in REQUIRED if p not in names]
    if missing:
        raise PlyError(name, f"missing property: {', '.join(missing)} (not a 3DGS PLY?)")
    if count == 0:
        raise PlyError(name, "zero splats (element vertex 0)")
    available = len(buf) - offset
    need = count * dtype.itemsize
    if need > available:
        raise PlyError(name, f"truncated body: header claims {count} splats ({need} bytes) but only "
                             f"{available} bytes follow the header ({available // dtype.itemsize} splats)")
    n_rest = 0
    while f"f_rest_{n_rest}" in names:
        n_rest += 1
    if n_rest // 3 not in SH_COEFFS_PER_CHANNEL or n_rest % 3:
        raise PlyError(name, f"{n_rest} f_rest properties do not match SH degree 0..3 (0, 9, 24 or 45)")

    body = np.frombuffer(buf, dtype=dtype, count=count, offset=offset)
    field_types = {dtype.fields[f][0] for f in dtype.names}
    if len(field_types) == 1:
        # Every property has one type (the usual all-float file): view the body as a 2-D array and
        # copy each attribute in one pass (a run of columns is one strided copy). Copying column by
        # column instead walks all 260 MB of a 1M-splat file once per property: 62 passes.
        base = field_types.pop()
        table = np.frombuffer(buf, dtype=base, count=count * len(dtype.names), offset=offset)
        table = table.reshape(count, len(dtype.names))
        index = {f: i for i, f in enumerate(dtype.names)}

        def cols(prefix_names: list[str]) -> np.ndarray:
            idx = [index[p] for p in prefix_names]
            if not idx:
                return np.empty((count, 0), np.float32)
            if idx == list(range(idx[0], idx[0] + len(idx))):
                part = table[:, idx[0]:idx[0] + len(idx)]
            else:
                part = table[:, idx]
            return np.ascontiguousarray(part, dtype=np.float32)
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
    # Saturated values that trained scenes really contain (SuperSplat exports hold +inf opacity
    # logits for fully opaque splats, -inf log-scales for flat ones) have a clear meaning: clamp
    # them to finite values that quantize to the same bytes. Everything else non-finite is an error.
    np.clip(splats.opacity, -OPACITY_LOGIT_LIMIT, OPACITY_LOGIT_LIMIT, out=splats.opacity,
            where=np.isinf(splats.opacity))
    flat = np.isneginf(splats.log_scales)
    if flat.any():
        splats.log_scales[flat] = FLAT_LOG_SCALE
    for attr in ("means", "quats", "log_scales", "f_dc", "opacity", "f_rest"):
        arr = getattr(splats, attr)
        bad = ~np.isfinite(arr)
        if bad.any():
            rows = np.nonzero(bad.reshape(count, -1).any(1))[0]
            raise PlyError(name, f"non-finite values (NaN or inf) in {attr} of {len(rows)} splats "
                                 f"(first at splat {int(rows[0])})")
    zero_rot = (splats.quats * splats.quats).sum(1) == 0
    if zero_rot.any():
        raise PlyError(name, f"zero-length rotation quaternion in {int(zero_rot.sum())} splats "
                             f"(first at splat {int(np.argmax(zero_rot))})")
    return splats


def ply_bytes(splats: Splats) -> bytes:
    """Serialise `Splats` as a binary little-endian float32 3DGS PLY (INRIA property order)."""
    n = splats.count
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(splats.f_rest.shape[1])]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    body = np.concatenate([splats.means, np.zeros((n, 3), np.float32), splats.f_dc, splats.f_rest,
                           splats.opacity[:, None], splats.log_scales, splats.quats], axis=1)
    header = f"ply\nformat binary_little_endian 1.0\nelement vertex {n}\n"
    header += "".join(f"property float {p}\n" for p in names) + "end_header\n"
    return header.encode("ascii") + np.ascontiguousarray(body, dtype="<f4").tobytes()


def write_ply(path: str | os.PathLike, splats: Splats) -> int:
    """Write `splats` to `path` (atomically, via a temporary file); returns bytes written."""
    data = ply_bytes(splats)
    tmp = f"{os.fspath(path)}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return len(data)
