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
from .chunk import GroupResult, folder_name
from .tree import ChunkOptions, Node, children

META_NAME = "lod-meta.json"


def _round(v: float) -> float:
    return float(f"{v:.7g}")


def lod_meta(tree: Node, results: Iterable[GroupResult], levels: int, opts: ChunkOptions) -> dict:
    """The lod-meta.json document of a streamed SOG whose groups all finished."""
    by_leaf: dict[int, tuple[GroupResult, int]] = {}
    filenames: list[str] = []
    file_index: dict[tuple[int, int], int] = {}
    for res in sorted(results, key=lambda r: r.group):
        for j, leaf in enumerate(res.leaves):
            by_leaf[leaf] = (res, j)
        for level in range(levels):
            file_index[(level, res.group)] = len(filenames)
            filenames.append(f"{folder_name(level, res.group)}/meta.json")
    counts = [0] * levels

    def node(n: Node) -> dict:
        if isinstance(n, int):
            res, j = by_leaf[n]
            lods = {}
            for level in range(levels):
                per_leaf = res.counts[level]
                lods[str(level)] = {"file": file_index[(level, res.group)], "offset": sum(per_leaf[:j]),
                                    "count": per_leaf[j]}
                counts[level] += per_leaf[j]
            lo, hi = res.bounds[j]
            return {"bound": {"min": [_round(v) for v in lo], "max": [_round(v) for v in hi]}, "lods": lods}
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
