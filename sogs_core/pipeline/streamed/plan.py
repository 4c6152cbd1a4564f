"""A streamed SOG's inputs and plan: each input as a `LevelSource` (a PLY larger than the memory
budget mapped and read by ranges, positions only, 12 bytes a splat; else read whole), and
`plan_streamed`: the chunk tree over level 0's centres, its leaves packed into groups, other given
levels routed into the same leaves; a `GroupSpec` names one group's rows."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from sogs_core.formats import read_scene
from sogs_core.formats.ply.rows import open_ply_rows
from sogs_core.model.splats import Splats
from sogs_core.pipeline.streamed.tree import Node, build_tree, group_leaves, route
from sogs_core.settings import StreamedSettings

#: a PLY larger than this is mapped and read by ranges instead of whole (bytes)
DEFAULT_MEMORY_BUDGET = 2 << 30


class LevelSource:
    """The splats of one input: a mapped PLY read by ranges, or a scene read whole."""

    def __init__(self, path: str, memory_budget: int = DEFAULT_MEMORY_BUDGET, name: Optional[str] = None) -> None:
        self.path, self.name = path, name or path
        self.rows = None
        self.splats: Optional[Splats] = None
        if os.path.isfile(path) and os.path.getsize(path) > memory_budget:
            self.rows = open_ply_rows(path, self.name)
        if self.rows is not None:
            self.count, self.format, self.input_bytes = self.rows.count, "ply", os.path.getsize(path)
        else:
            scene = read_scene(path, name)
            self.splats, self.count, self.format, self.input_bytes = (scene.splats, scene.splats.count,
                                                                      scene.format, scene.input_bytes)

    @property
    def ranged(self) -> bool:
        return self.rows is not None

    def positions(self) -> np.ndarray:
        return self.rows.positions() if self.rows is not None else self.splats.means

    def gather(self, index: np.ndarray) -> Splats:
        return self.rows.gather(index) if self.rows is not None else self.splats.take(index)


@dataclass
class GroupSpec:
    """One unit of work: group `group`, its leaves, and per level the rows of each leaf in that
    level's source (`rows[0]` always; `rows[k]` only for levels given as inputs)."""

    group: int
    leaves: list[int]
    rows: list[list[np.ndarray]]

    @property
    def splats(self) -> int:
        return sum(len(r) for r in self.rows[0])


@dataclass
class StreamedPlan:
    tree: Node
    groups: list[GroupSpec]
    levels: int
    count: int                         # level-0 splats


def plan_streamed(sources: list[LevelSource], settings: StreamedSettings, device=None) -> StreamedPlan:
    """The chunk tree over the first source's centres (cut on `device` when it is a GPU) and
    the groups to compress."""
    opts = settings.chunks
    tree, leaves = build_tree(sources[0].positions(), opts, device)
    given: list[list[np.ndarray]] = []
    for src in sources[1:]:                       # a given level: each splat into level 0's leaf around it
        leaf_of = route(tree, src.positions())
        order = np.argsort(leaf_of, kind="stable")
        bounds = np.searchsorted(leaf_of[order], np.arange(len(leaves) + 1))
        given.append([order[bounds[k]:bounds[k + 1]] for k in range(len(leaves))])
    groups = []
    for g, members in enumerate(group_leaves(leaves, opts.chunk_count)):
        rows = [[leaves[k] for k in members]] + [[lv[k] for k in members] for lv in given]
        groups.append(GroupSpec(g, members, rows))
    levels = len(sources) if len(sources) > 1 else settings.levels
    return StreamedPlan(tree, groups, levels, sources[0].count)
