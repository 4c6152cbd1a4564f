"""`lod-meta.json` (version 1), the index of a streamed SOG, as PlayCanvas's engine and
splat-transform read it:

    {"version": 1, "asset": {...}, "count": total, "counts": [per level], "lodLevels": L,
     "filenames": ["0_0/meta.json", ...],
     "tree": node}   node = {"bound": {"min": [x,y,z], "max": [...]}, "children": [node, node]}
                     leaf = {"bound": ..., "lods": {"0": {"file": i, "offset": o, "count": c}, ...}}

A leaf's splats of one level are the run [offset, offset + count) of file `file`. The viewer
picks a level per leaf by camera distance and loads only the files it needs. The file is
written last: without it, a streamed output is visibly unfinished.
"""
from __future__ import annotations

import json
from typing import Callable, Iterable, Protocol, Union

from sogs_core import __version__
from sogs_core.settings import ChunkOptions

META_NAME = "lod-meta.json"

#: a node of the chunk tree: a leaf's number, or (axis, split value, left node, right node)
Node = Union[int, tuple]


def children(node: Node) -> tuple:
    """The two children of an inner node."""
    return node[2], node[3]


class FileEntry(Protocol):
    """What the index needs of one written SOG file: its folder name `L_i`, its level, and the
    leaves it holds with each leaf's splat count, in file order."""

    name: str
    level: int
    leaves: list[int]
    counts: list[int]


def _round(v: float) -> float:
    return float(f"{v:.7g}")


def lod_meta(tree: Node, files: Iterable[FileEntry], bounds: dict[int, list], levels: int,
             opts: ChunkOptions) -> dict:
    """The lod-meta.json document of a streamed SOG whose files all finished. bounds: leaf ->
    [min xyz, max xyz]."""
    files = sorted(files, key=lambda f: (f.level, int(f.name.split("_")[1])))
    filenames = [f"{f.name}/meta.json" for f in files]
    refs: dict[int, dict[str, dict]] = {}
    for index, f in enumerate(files):
        offset = 0
        for leaf, count in zip(f.leaves, f.counts):
            refs.setdefault(leaf, {})[str(f.level)] = {"file": index, "offset": offset, "count": count}
            offset += count
    counts = [0] * levels

    def node(n: Node) -> dict:
        if isinstance(n, int):
            lods = refs[n]
            for level, ref in lods.items():
                counts[int(level)] += ref["count"]
            lo, hi = bounds[n]
            return {"bound": {"min": [_round(v) for v in lo], "max": [_round(v) for v in hi]},
                    "lods": dict(sorted(lods.items(), key=lambda kv: int(kv[0])))}
        kids = [node(c) for c in children(n)]
        lo = [min(k["bound"]["min"][a] for k in kids) for a in range(3)]
        hi = [max(k["bound"]["max"][a] for k in kids) for a in range(3)]
        return {"bound": {"min": lo, "max": hi}, "children": kids}

    root = node(tree)
    return {
        "version": 1,
        "asset": {"generator": f"sogs-cluster {__version__}", "chunkGaussians": opts.chunk_count,
                  "chunkExtent": opts.chunk_extent, "chunkMinGaussians": opts.chunk_min},
        "count": sum(counts),
        "counts": counts,
        "lodLevels": levels,
        "filenames": filenames,
        "tree": root,
    }


def write_lod_meta(meta: dict, write: Callable[[bytes], None]) -> int:
    """Serialise the index and hand it to `write`; returns its bytes."""
    data = json.dumps(meta, separators=(",", ":")).encode()
    write(data)
    return len(data)
