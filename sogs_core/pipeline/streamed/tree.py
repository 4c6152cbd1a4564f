"""The chunk tree of a streamed SOG: a k-d tree over the splat centres, cut into leaves.

A node is split at the median of its widest axis while it holds more than `chunk_count`
splats, or while it is wider than `chunk_extent` and holds more than `chunk_min` (the rule
PlayCanvas's streamed-SOG writer documents: the minimum keeps sparse sky and background from
being cut into near-empty chunks). Leaves come out in depth-first order, so consecutive leaves
are neighbours in space; `group_leaves` packs them into chunk groups (one SOG file per group
and level: the unit of parallel work).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from sogs_core.formats.lod_meta.write import Node
from sogs_core.settings import ChunkOptions


def build_tree(means: np.ndarray, opts: ChunkOptions, device: Optional[torch.device] = None) -> tuple[Node, list[np.ndarray]]:
    """(tree, leaves): each leaf the sorted row indices (int64) of the splats it holds. On a
    CUDA device the cuts are found there (32M centres: seconds instead of a minute)."""
    if len(means) == 0:
        raise ValueError("a streamed SOG needs at least one splat")
    if device is not None and device.type == "cuda":
        return _build_tree_torch(torch.from_numpy(np.asarray(means, np.float32)).to(device), opts)
    return _build_tree_numpy(np.asarray(means, np.float32), opts)


def _build_tree_numpy(pts: np.ndarray, opts: ChunkOptions) -> tuple[Node, list[np.ndarray]]:
    """`build_tree` on a CPU. The centres are kept as three columns reordered node by node, so
    that each node's reductions and median work on contiguous slices of its own (gathering a
    node's rows out of the whole array at every depth was most of the time)."""
    leaves: list[np.ndarray] = []
    cols = [np.ascontiguousarray(pts[:, k]) for k in range(3)]
    perm = np.arange(len(pts), dtype=np.int64)

    def split(start: int, stop: int) -> Node:
        seg = [c[start:stop] for c in cols]
        lo = np.array([c.min() for c in seg])
        hi = np.array([c.max() for c in seg])
        axis = int(np.argmax(hi - lo))
        wide = float(hi[axis] - lo[axis]) > opts.chunk_extent
        n = stop - start
        if n > opts.chunk_count or (wide and n > opts.chunk_min):
            mid = n // 2
            part = np.argpartition(seg[axis], mid)
            cut = float(seg[axis][part[mid]])
            for c in (*cols, perm):                   # the node's rows in partition order
                c[start:stop] = c[start:stop][part]
            return axis, cut, split(start, start + mid), split(start + mid, stop)
        leaves.append(np.sort(perm[start:stop]))
        return len(leaves) - 1

    return split(0, len(pts)), leaves


def _build_tree_torch(pts: torch.Tensor, opts: ChunkOptions) -> tuple[Node, list[np.ndarray]]:
    """`build_tree` with the same rule on a device (median by sort instead of a partition, so
    the two may put a tied centre on different sides; both are valid cuts)."""
    leaves: list[np.ndarray] = []

    def split(idx: torch.Tensor) -> Node:
        p = pts[idx]
        lo, hi = p.aminmax(dim=0)
        axis = int(torch.argmax(hi - lo))
        wide = float(hi[axis] - lo[axis]) > opts.chunk_extent
        if len(idx) > opts.chunk_count or (wide and len(idx) > opts.chunk_min):
            mid = len(idx) // 2
            order = torch.argsort(p[:, axis])
            cut = float(p[order[mid], axis])
            return axis, cut, split(idx[order[:mid]]), split(idx[order[mid:]])
        leaves.append(np.sort(idx.cpu().numpy()))
        return len(leaves) - 1

    return split(torch.arange(len(pts), device=pts.device)), leaves


def group_leaves(leaves: list[np.ndarray], chunk_count: int) -> list[list[int]]:
    """Consecutive leaves packed into groups: a group is closed once it holds more than
    chunk_count splats (so it holds less than twice that; a leaf is never cut). Fuller files:
    closing before the limit gave more files and more bytes (bench/NOTES.md)."""
    groups: list[list[int]] = [[]]
    size = 0
    for k, leaf in enumerate(leaves):
        groups[-1].append(k)
        size += len(leaf)
        if size > chunk_count and k < len(leaves) - 1:
            groups.append([])
            size = 0
    return groups


def route(tree: Node, means: np.ndarray) -> np.ndarray:
    """The leaf of each position (another level's splats placed into level 0's leaves)."""
    out = np.empty(len(means), np.int64)

    def walk(node: Node, idx: np.ndarray) -> None:
        if isinstance(node, int):
            out[idx] = node
            return
        axis, cut, left, right = node
        right_side = means[idx, axis] >= cut
        walk(left, idx[~right_side])
        walk(right, idx[right_side])

    walk(tree, np.arange(len(means)))
    return out
