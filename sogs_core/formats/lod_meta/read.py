"""A streamed SOG (`lod-meta.json` + SOG v2 folders) read back one level at a time.

Used by `decompress --level`, `info` and the tests: every leaf's run of the level is read from
its file (each file decoded once) and the runs are joined in tree order. The index is checked
as splat-transform checks it: version 1, counts per level equal to the leaves' runs, runs
inside their files; and every name in `filenames` stays inside the folder (`formats.names`),
checked before any file is opened.
"""
from __future__ import annotations

import json
import os

import numpy as np

from sogs_core.formats.names import path_inside, unsafe_relative_name
from sogs_core.model.errors import SogFormatError
from sogs_core.model.splats import Splats


def read_lod_meta(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            meta = json.loads(f.read())
    except OSError as exc:
        raise SogFormatError(path, f"cannot open: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise SogFormatError(path, f"not JSON: {exc}") from None
    if meta.get("version", 1) != 1:
        raise SogFormatError(path, f"unsupported lod-meta.json version {meta.get('version')!r}")
    if not isinstance(meta.get("lodLevels"), int) or meta["lodLevels"] < 1:
        raise SogFormatError(path, "lodLevels missing or not a positive integer")
    if not isinstance(meta.get("filenames"), list) or not isinstance(meta.get("tree"), dict):
        raise SogFormatError(path, "filenames or tree missing")
    for name in meta["filenames"] + ([meta["environment"]] if "environment" in meta else []):
        problem = unsafe_relative_name(name)
        if problem is not None:     # refused before any file is opened
            raise SogFormatError(path, f"unsafe file name in filenames: {problem}")
    return meta


def leaves(node: dict) -> list[dict]:
    """The leaves of the tree, depth first."""
    if "lods" in node:
        return [node]
    return [leaf for child in node.get("children", []) for leaf in leaves(child)]


def read_lod_level(path: str, level: int = 0) -> Splats:
    """The splats of one level of the streamed SOG whose lod-meta.json is `path`."""
    from sogs_core.formats import read_scene

    meta = read_lod_meta(path)
    if not 0 <= level < meta["lodLevels"]:
        raise SogFormatError(path, f"level {level} not in 0..{meta['lodLevels'] - 1}")
    folder = os.path.dirname(path)
    decoded: dict[int, Splats] = {}
    runs: list[Splats] = []
    for leaf in leaves(meta["tree"]):
        ref = leaf["lods"].get(str(level)) if isinstance(leaf.get("lods"), dict) else None
        if ref is None:
            continue
        if not all(isinstance(ref.get(k), int) and ref[k] >= 0 for k in ("offset", "count")):
            raise SogFormatError(path, f"a leaf's run of level {level} has no whole offset and count: {ref!r:.200}")
        if ref["count"] == 0:
            continue
        f = ref.get("file")
        if not isinstance(f, int) or not 0 <= f < len(meta["filenames"]):
            raise SogFormatError(path, f"a leaf names file {f!r}, not one of the {len(meta['filenames'])} filenames")
        if f not in decoded:
            target, problem = path_inside(folder, meta["filenames"][f])
            if problem is not None:
                raise SogFormatError(path, f"unsafe file name in filenames: {problem}")
            decoded[f] = read_scene(target).splats
        s = decoded[f]
        if ref["offset"] + ref["count"] > s.count:
            raise SogFormatError(path, f"a leaf's run {ref['offset']}+{ref['count']} runs past the "
                                       f"{s.count} splats of {meta['filenames'][f]}")
        runs.append(s.take(np.arange(ref["offset"], ref["offset"] + ref["count"])))
    total = sum(r.count for r in runs)
    if "counts" in meta and meta["counts"][level] != total:
        raise SogFormatError(path, f"level {level}: counts says {meta['counts'][level]}, the tree holds {total}")
    if not runs:
        raise SogFormatError(path, f"level {level} holds no splats")
    return Splats.concat(runs)
