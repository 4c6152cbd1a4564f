"""Writing and reading the SOG file set: a bundled `.sog` (ZIP) or an unbundled folder.

Crash safety: a bundle is written to a temporary name and renamed into place; a folder gets
its images first and `meta.json` last (also via rename), so a folder without `meta.json` is
visibly unfinished and readers never see a half scene that looks complete.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass
from typing import Callable, Optional

from sogs_core.formats.atomic import atomic_write
from sogs_core.formats.sog.limits import declared_count, entry_bytes
from sogs_core.model.errors import SogFormatError


@dataclass
class SogPackage:
    """The files of one SOG: name -> bytes, with meta.json kept as a dict until serialised."""

    meta: dict
    files: dict[str, bytes]

    def meta_bytes(self) -> bytes:
        return json.dumps(self.meta, separators=(",", ":")).encode("utf-8")

    def bundle_bytes(self) -> bytes:
        """The `.sog` ZIP: meta.json first, then the images, all at the archive root. meta.json
        is deflated (its codebooks' decimal text shrinks to ~40 %, a few KB a scene; every
        engine with a .sog reader, 2.11 on, and splat-transform inflate it); the images are
        stored (WebP is already compressed, and readers may range-read them)."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            # a fixed entry date: the same scene and settings give the same bytes at any time
            for name, data in [("meta.json", self.meta_bytes()), *self.files.items()]:
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                if name == "meta.json":
                    info.compress_type = zipfile.ZIP_DEFLATED
                    z.writestr(info, data, compresslevel=9)
                else:
                    z.writestr(info, data)
        return buf.getvalue()

    def total_bytes(self) -> int:
        return len(self.meta_bytes()) + sum(len(d) for d in self.files.values())


#: the first bytes of a .sog bundle (a ZIP archive; the second is an empty one)
SOG_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


def is_bundle_path(path: str) -> bool:
    return path.lower().endswith(".sog")


def write_bundle(pkg: SogPackage, path: str) -> int:
    data = pkg.bundle_bytes()
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    atomic_write(path, data)
    return len(data)


def write_folder_with(pkg: SogPackage, put: Callable[[str, bytes], None], exists: Callable[[str], bool],
                      delete: Callable[[str], None]) -> int:
    """The folder protocol over any storage (local files, S3 keys): unmark an older complete scene
    (delete its meta.json) before touching its images, write the images, then meta.json last, so
    a folder with a meta.json is always a complete scene, even after a crash. Names are relative
    to the folder. Returns bytes written."""
    if exists("meta.json"):
        delete("meta.json")
    total, written = 0, []
    try:
        for name, data in pkg.files.items():
            put(name, data)
            written.append(name)
            total += len(data)
        meta = pkg.meta_bytes()
        put("meta.json", meta)
    except BaseException:
        for name in written:          # a failed write leaves no half scene behind
            try:
                delete(name)
            except Exception:
                pass
        raise
    return total + len(meta)


def write_folder(pkg: SogPackage, path: str) -> int:
    """A folder on the local filesystem; each file written to a temporary name and renamed."""
    os.makedirs(path, exist_ok=True)

    def put(name: str, data: bytes) -> None:
        atomic_write(os.path.join(path, name), data)

    return write_folder_with(pkg, put, lambda name: os.path.exists(os.path.join(path, name)),
                             lambda name: os.remove(os.path.join(path, name)))


def write_sog(pkg: SogPackage, path: str) -> int:
    """Write to `path`: a bundle when it ends in .sog, else a folder. Returns bytes written."""
    return write_bundle(pkg, path) if is_bundle_path(path) else write_folder(pkg, path)


def load_files(path: str) -> tuple[dict, dict[str, bytes], str]:
    """Read a SOG from a `.sog` bundle, a folder, or a folder's meta.json.

    Returns (meta dict, name -> bytes of every file meta.json names, a label for messages)."""
    if os.path.isdir(path):
        folder, meta_path = path, os.path.join(path, "meta.json")
    elif os.path.basename(path) == "meta.json":
        folder, meta_path = os.path.dirname(path) or ".", path
    elif os.path.isfile(path):
        return _load_bundle(path)
    else:
        raise SogFormatError(path, "no such file or folder")
    if not os.path.isfile(meta_path):
        raise SogFormatError(path, "no meta.json (not a SOG folder, or an unfinished write)")

    def get(name: str) -> Optional[bytes]:
        p = os.path.join(folder, name)
        if not os.path.isfile(p):
            return None
        with open(p, "rb") as f:
            return f.read()

    with open(meta_path, "rb") as f:
        return load_folder_with(f.read(), get, path)


def load_folder_with(meta_raw: bytes, get: Callable[[str], Optional[bytes]], label: str
                     ) -> tuple[dict, dict[str, bytes], str]:
    """A SOG folder from its meta.json bytes and `get(name)` -> the bytes of a file beside it
    (None when missing): a local folder or a prefix in an object store."""
    meta = _parse_meta(meta_raw, label)
    files = {}
    for name in _named_files(meta):
        data = get(name)
        if data is None:
            raise SogFormatError(label, f"meta.json names {name}, which is missing")
        files[name] = data
    return meta, files, label


def load_bundle_bytes(data: bytes, label: str) -> tuple[dict, dict[str, bytes], str]:
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise SogFormatError(label, "not a .sog bundle (not a ZIP archive)") from None
    with z:
        names = set(z.namelist())
        if "meta.json" not in names:
            raise SogFormatError(label, "bundle has no meta.json at its root")
        _check_entry(z, "meta.json", {}, label)
        meta = _parse_meta(z.read("meta.json"), label)
        files = {}
        for name in _named_files(meta):
            if name not in names:
                raise SogFormatError(label, f"meta.json names {name}, which the bundle lacks")
            _check_entry(z, name, meta, label)
            files[name] = z.read(name)
    return meta, files, label


def _check_entry(z: zipfile.ZipFile, name: str, meta: dict, label: str) -> None:
    """Refuse an entry whose declared inflated size is more than a scene of meta's count can need
    (`limits`), before inflating it: a 2 MB bundle must not cost gigabytes of memory. zipfile
    stops reading at the declared size, so the declaration bounds what is read."""
    size, cap = z.getinfo(name).file_size, entry_bytes(meta, name)
    if size > cap:
        raise SogFormatError(label, f"{name} inflates to {size:,} bytes, more than the {cap:,} that a scene of "
                                    f"{declared_count(meta):,} splats can need")


def _load_bundle(path: str) -> tuple[dict, dict[str, bytes], str]:
    with open(path, "rb") as f:
        return load_bundle_bytes(f.read(), path)


def _parse_meta(raw: bytes, label: str) -> dict:
    try:
        meta = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SogFormatError(label, f"meta.json is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise SogFormatError(label, "meta.json is not a JSON object")
    return meta


def _named_files(meta: dict) -> list[str]:
    names = []
    for key in ("means", "scales", "quats", "sh0", "shN"):
        section = meta.get(key)
        if isinstance(section, dict):
            for name in section.get("files", []):
                if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
                    raise SogFormatError("meta.json", f"unsafe file name {name!r} in {key}.files")
                names.append(name)
    return names


def sog_info(path: str) -> dict:
    """What `info` prints: version, count, SH bands, palette size, per-file bytes; from the
    container alone (nothing decoded), so `info` needs no torch."""
    meta, files, label = load_files(path)
    version = meta.get("version", 1)
    count = meta["count"] if version == 2 else meta["means"]["shape"][0]
    shn = meta.get("shN") or {}
    return {"path": label, "version": version, "count": int(count),
            "sh_bands": int(shn.get("bands", 0)) if version == 2 else None,
            "palette": shn.get("count"), "generator": (meta.get("asset") or {}).get("generator"),
            "files": {name: len(data) for name, data in files.items()},
            "total_bytes": sum(len(d) for d in files.values())}
