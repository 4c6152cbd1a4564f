"""The PLY header, shared by the INRIA and the compressed-PLY readers and the ranged reader.

Parsed by hand so that every way a file can be wrong becomes one `PlyError` that names the file
and the problem, and so that no array is sized from a header count before the count is checked
against the bytes actually present.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from sogs_core.model.errors import PlyError

PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
MAX_HEADER_BYTES = 1 << 20


@dataclass
class PlyHeader:
    format: str
    elements: list          # [(element, count, [(prop, dtype) | ('list', ...)])]
    body: int               # byte offset of the first element
    comments: list


@dataclass
class Element:
    """A fixed-size element located in the body: `count` rows of `dtype` at byte `offset`."""

    name: str
    count: int
    dtype: np.dtype
    offset: int

    def rows(self, buf: memoryview) -> np.ndarray:
        return np.frombuffer(buf, dtype=self.dtype, count=self.count, offset=self.offset)


def parse_header(buf: memoryview, name: str) -> PlyHeader:
    head = bytes(buf[:MAX_HEADER_BYTES])
    if not head.startswith(b"ply"):
        raise PlyError(name, "not a PLY file (no 'ply' magic at the start)")
    end = re.search(rb"end_header\r?\n", head)
    if end is None:
        raise PlyError(name, "not a PLY file or truncated header (no 'end_header' line)")
    lines = head[: end.start()].decode("ascii", errors="replace").splitlines()
    fmt = None
    elements: list[tuple[str, int, list]] = []
    comments: list[str] = []
    for raw in lines[1:]:
        words = raw.split()
        if not words or words[0] == "obj_info":
            continue
        if words[0] == "comment":
            comments.append(raw.strip()[len("comment"):].strip())
        elif words[0] == "format":
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
    if fmt == "ascii":
        raise PlyError(name, "ASCII PLY is not supported; convert it to binary first")
    if fmt not in ("binary_little_endian", "binary_big_endian"):
        raise PlyError(name, f"unknown PLY format {fmt!r}")
    return PlyHeader(fmt, elements, end.end(), comments)


def locate(buf: memoryview, name: str, header: PlyHeader, wanted: tuple[str, ...]) -> dict[str, Element]:
    """The fixed-size elements named in `wanted`, located in the body with their counts checked
    against the bytes present (elements after a list-property element cannot be located)."""
    endian = "<" if header.format == "binary_little_endian" else ">"
    found: dict[str, Element] = {}
    offset = header.body
    for el_name, count, props in header.elements:
        if any(p[0] == "list" for p in props):
            if el_name in wanted:
                raise PlyError(name, f"list properties in the {el_name!r} element are not supported")
            if all(w in found for w in wanted):
                break
            raise PlyError(name, f"element {el_name!r} has list properties; cannot locate the elements after it")
        dtype = np.dtype([(p, endian + t) for p, t in props])
        need = count * dtype.itemsize
        available = len(buf) - offset
        if el_name in wanted:
            if need > available:
                what = "splats" if el_name == "vertex" else f"{el_name!r} rows"
                raise PlyError(name, f"truncated body: header claims {count} {what} ({need} bytes) but only "
                                     f"{available} bytes follow ({available // max(dtype.itemsize, 1)} {what})")
            found[el_name] = Element(el_name, count, dtype, offset)
            if all(w in found for w in wanted):
                break
        elif need > available:
            raise PlyError(name, f"truncated body: element {el_name!r} claims {count} rows")
        offset += need
    return found


def is_compressed(header: PlyHeader) -> bool:
    """PlayCanvas compressed PLY: a `chunk` element and a `packed_position` vertex property."""
    names = {el for el, _, _ in header.elements}
    vertex_props = {p[0] for el, _, props in header.elements if el == "vertex" for p in props}
    return "chunk" in names and "packed_position" in vertex_props
