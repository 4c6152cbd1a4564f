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

from typing import Iterable

from .. import __version__
from .chunk import FileResult
from .tree import ChunkOptions, Node, children

META_NAME = "lod-meta.json"


def _round(v: float) -> float:
    return float(f"{v:.7g}")


def lod_meta(tree: Node, files: Iterable[FileResult], bounds: dict[int, list], levels: int,
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

