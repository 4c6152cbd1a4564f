"""Readers: every splat format people hold -> `Splats`, one format per module.

    ply             INRIA 3DGS PLY (binary, float properties)            ply/read.py
    compressed-ply  PlayCanvas / SuperSplat compressed PLY               ply/compressed.py
    spz             Niantic SPZ v2-v4 (gzip or zstd)                     spz.py
    splat           antimatter15 .splat (32 bytes a splat)               splat.py
    ksplat          GaussianSplats3D .ksplat, modes 0-2                  ksplat.py
    sog             SOG v2 or legacy v1: .sog bundle, folder, meta.json  sog/read.py

The format is found from the content (magic bytes, PLY header) and only where a format has no
magic (.splat; .ksplat, whose header is checked) from the extension. Every malformed file raises
a `SplatFileError` (or a subclass) naming the file and the problem.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional

from sogs_core.model.errors import SplatFileError
from sogs_core.formats.sog.package import SOG_MAGICS
from sogs_core.model.splats import Splats
from sogs_core.formats.source import Source, load

#: format name -> the file name endings the backfill lists for it
FORMATS: dict[str, tuple[str, ...]] = {
    "ply": (".ply",),
    "spz": (".spz",),
    "splat": (".splat",),
    "ksplat": (".ksplat",),
    "sog": (".sog", "meta.json"),
}
FORMAT_NAMES = tuple(FORMATS)


@dataclass
class SceneInput:
    """A scene read from a file: its splats, the format it came in, and for a SOG v2 input the
    codes it stores (so a re-compression can keep them instead of quantizing a second time)."""

    splats: Splats
    format: str                      # ply, compressed-ply, spz, splat, ksplat, sog-v2, sog-v1
    input_bytes: int
    codes: Optional[object] = None   # formats.sog.codes.QuantizedScene
    dropped_invalid: int = 0         # splats dropped by `invalid="drop"` (then `splats` holds the rest)


def is_sog_format(name: str) -> bool:
    """A `SceneInput.format` of a SOG (v1 or v2): its positions sit on a SOG's grid already."""
    return name.startswith("sog")


def _looks_like_ksplat(buf: memoryview) -> bool:
    return (len(buf) >= 4096 and buf[0] == 0 and 1 <= buf[1] <= 9
            and int.from_bytes(buf[20:22], "little") <= 2 and int.from_bytes(buf[4:8], "little") >= 1)


def detect(buf: memoryview, name: str) -> str:
    """The reader for these bytes: ply, spz, sog (a bundle or a meta.json), ksplat or splat."""
    head = bytes(buf[:4])
    if head[:3] == b"ply":
        return "ply"
    if head[:2] == b"\x1f\x8b" or head == b"NGSP":
        return "spz"
    if head in SOG_MAGICS:
        return "sog"
    if bytes(buf[:64]).lstrip()[:1] == b"{":
        return "sog"
    if _looks_like_ksplat(buf):
        return "ksplat"
    # no magic matched: the extension names the reader, whose own checks then say what is wrong
    # (a .ply without 'ply' at its start is "not a PLY file", not "unknown format")
    by_name = format_of_name(name)
    if by_name is not None:
        return by_name
    raise SplatFileError(name, f"unknown format (first bytes {head!r}); supported: .ply, .compressed.ply, "
                               ".spz, .splat, .ksplat, .sog and SOG folders (meta.json)")


def read_scene(source: Source, name: Optional[str] = None, invalid: str = "fail") -> SceneInput:
    """Read any supported file (path or bytes); a path may also be a SOG folder or its meta.json.
    `invalid`: "fail" refuses a file with a NaN, a stray inf or a zero-length rotation; "drop"
    removes those splats (`checks.drop_invalid`, splat-transform's -N rule) and counts them (SOG inputs cannot hold such
    values: their readers always refuse)."""
    from sogs_core.settings import INVALID_POLICIES

    if invalid not in INVALID_POLICIES:
        raise ValueError(f"invalid must be one of {', '.join(INVALID_POLICIES)}, not {invalid!r}")
    scene = _read(source, name, invalid == "fail")
    if invalid == "drop" and scene.codes is None:
        label = name or (os.fspath(source) if isinstance(source, (str, os.PathLike)) else "scene")
        _drop_invalid(scene, label)
    return scene


def _drop_invalid(scene: SceneInput, label: str) -> None:
    """The invalid splats of a scene read unchecked removed and counted, the rest finished."""
    from sogs_core.formats.checks import drop_invalid, finish
    from sogs_core.model.errors import EmptySceneError

    count = scene.splats.count
    splats, scene.dropped_invalid = drop_invalid(scene.splats)
    if splats.count == 0:
        raise EmptySceneError(f"{label}: all {count} splats are invalid (NaN, inf or a zero-length rotation): "
                              "nothing left to write")
    scene.splats = finish(splats, label)


def _read(source: Source, name: Optional[str], check: bool) -> SceneInput:
    """The scene of any supported file; `check=False` leaves invalid values for `_drop_invalid`."""
    from sogs_core.formats.sog.read import read_sog_scene
    from sogs_core.formats.sog.package import load_bundle_bytes, load_files

    if not isinstance(source, (bytes, bytearray, memoryview)):
        path = os.fspath(source)
        if os.path.isdir(path) or os.path.basename(path) == "meta.json":
            meta, files, label = load_files(path)
            splats, codes, version = read_sog_scene(meta, files, name or label)
            meta_path = path if not os.path.isdir(path) else os.path.join(path, "meta.json")
            size = os.path.getsize(meta_path) + sum(len(d) for d in files.values())
            return SceneInput(splats, f"sog-v{version}", size, codes)
    buf, label = load(source, name)
    fmt = detect(buf, label)
    if fmt == "ply":
        from sogs_core.formats.ply.header import is_compressed, parse_header
        from sogs_core.formats.ply.read import decode_ply

        header = parse_header(buf, label)
        fmt = "compressed-ply" if is_compressed(header) else "ply"
        return SceneInput(decode_ply(buf, label, header, check), fmt, len(buf))
    if fmt == "spz":
        from sogs_core.formats.spz import read_spz

        return SceneInput(read_spz(buf, label, check), "spz", len(buf))
    if fmt == "ksplat":
        from sogs_core.formats.ksplat import read_ksplat

        return SceneInput(read_ksplat(buf, label, check), "ksplat", len(buf))
    if fmt == "splat":
        from sogs_core.formats.splat import read_splat

        return SceneInput(read_splat(buf, label, check), "splat", len(buf))
    if bytes(buf[:64]).lstrip()[:1] == b"{":
        raise SplatFileError(label, "a meta.json alone: read the SOG folder (or its meta.json path) so that "
                                    "the WebP files beside it can be found")
    meta, files, label = load_bundle_bytes(bytes(buf), label)
    splats, codes, version = read_sog_scene(meta, files, label)
    return SceneInput(splats, f"sog-v{version}", len(buf), codes)


def read_sog_folder(meta_raw: bytes, get: Callable[[str], Optional[bytes]], label: str) -> SceneInput:
    """A SOG folder held elsewhere (an object store): its meta.json bytes and `get(name)` for the
    files it names (None when missing)."""
    from sogs_core.formats.sog.read import read_sog_scene
    from sogs_core.formats.sog.package import load_folder_with

    meta, files, label = load_folder_with(meta_raw, get, label)
    splats, codes, version = read_sog_scene(meta, files, label)
    return SceneInput(splats, f"sog-v{version}", len(meta_raw) + sum(len(d) for d in files.values()), codes)


def read_splats(source: Source, name: Optional[str] = None) -> Splats:
    """The splats of any supported file (see `read_scene`)."""
    return read_scene(source, name).splats


def format_of_name(rel: str) -> Optional[str]:
    """The format a listed object name stands for (None: not a scene file)."""
    base = rel.rsplit("/", 1)[-1].lower()
    if base == "meta.json":
        return "sog"
    for fmt, endings in FORMATS.items():
        if any(base.endswith(e) for e in endings if e.startswith(".")):
            return fmt
    return None


__all__ = ["FORMATS", "FORMAT_NAMES", "SceneInput", "detect", "format_of_name", "read_scene", "read_sog_folder",
           "read_splats"]
