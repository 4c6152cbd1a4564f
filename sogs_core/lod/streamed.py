"""A streamed SOG (lod-meta.json + one SOG v2 folder per level and chunk group), written from
one huge scene, or from several inputs that are its levels (finest first).

The steps, each usable on its own so that the Ray backfill can spread the groups over a
cluster (`ray_jobs/streamed.py`) while `write_streamed` runs them here one after another:

1. `LevelSource`: each input, mapped and read by ranges when it is a PLY larger than the
   memory budget (positions only, 12 bytes a splat), else read whole.
2. `plan_streamed`: the chunk tree over level 0's centres, its leaves packed into groups;
   other given levels routed into the same leaves. A `GroupSpec` names one group's rows.
3. `run_group`: a group's splats gathered, its coarser levels made (or taken from the given
   levels), one SOG per level written (`chunk.compress_group`).
4. `lod_meta` + `write_lod_meta`: the index, written last, atomically.
"""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import numpy as np

from ..readers import read_scene
from ..readers.ply_rows import open_ply_rows
from ..sog_files import atomic_write, write_folder
from ..splats import Splats
from .chunk import FolderWriter, GroupResult, compress_group, worst
from .meta import META_NAME, lod_meta
from .tree import ChunkOptions, Node, build_tree, group_leaves, route

#: a PLY larger than this is mapped and read by ranges instead of whole (bytes)
DEFAULT_MEMORY_BUDGET = 2 << 30


@dataclass
class StreamedSettings:
    """What shapes a streamed SOG besides the per-SOG settings (part of the settings hash)."""

    levels: int = 4                    # levels of detail made by decimation (with one input)
    chunks: ChunkOptions = field(default_factory=ChunkOptions)

    def __post_init__(self) -> None:
        if not 1 <= self.levels <= 12:
            raise ValueError(f"--lod-levels must be 1..12, not {self.levels}")

    def as_dict(self) -> dict:
        return asdict(self)


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


def run_group(compressor, spec: GroupSpec, sources: list[LevelSource], levels: int,
              write: FolderWriter) -> GroupResult:
    """Gather one group's splats, make or take its levels, write one SOG per level."""
    t0 = time.perf_counter()
    base = sources[0].gather(np.concatenate(spec.rows[0]))
    given = None
    if len(sources) > 1:
        given = [(base, [len(r) for r in spec.rows[0]])]
        for src, rows in zip(sources[1:], spec.rows[1:]):
            given.append((src.gather(np.concatenate(rows)), [len(r) for r in rows]))
    read = time.perf_counter() - t0
    res = compress_group(compressor, spec.group, spec.leaves, base, [len(r) for r in spec.rows[0]],
                         levels, write, given)
    res.seconds["read"] = res.seconds.get("read", 0.0) + read
    res.seconds["total"] = res.seconds.get("total", 0.0) + read
    return res


def write_lod_meta(meta: dict, write: Callable[[bytes], None]) -> int:
    data = json.dumps(meta, separators=(",", ":")).encode()
    write(data)
    return len(data)


@dataclass
class StreamedResult:
    output: str                        # the lod-meta.json written
    count: int                         # level-0 splats
    counts: list[int]                  # splats per level
    groups: int
    files: int
    input_bytes: int
    output_bytes: int
    seconds: dict
    fidelity: dict
    input_format: str
    ranged: bool


def output_folder(out: str) -> str:
    """`out/lod-meta.json` or `out/` -> the folder the streamed SOG goes into."""
    return os.path.dirname(out) or "." if os.path.basename(out) == META_NAME else out


def write_streamed(compressor, inputs: list[str], out: str, settings: StreamedSettings,
                   memory_budget: int = DEFAULT_MEMORY_BUDGET,
                   progress: Optional[Callable[[int, int], None]] = None) -> StreamedResult:
    """Inputs (one scene, or its levels finest first) -> a streamed SOG under `out`; groups one
    after another on this process's compressor. lod-meta.json is removed first and written
    last, so an interrupted run never leaves an index that looks complete."""
    folder = output_folder(out)
    meta_path = os.path.join(folder, META_NAME)
    os.makedirs(folder, exist_ok=True)
    if os.path.exists(meta_path):
        os.remove(meta_path)
    t0 = time.perf_counter()
    sources = [LevelSource(p, memory_budget) for p in inputs]
    plan = plan_streamed(sources, settings, compressor.device)
    seconds = {"plan": time.perf_counter() - t0}
    results: list[GroupResult] = []
    fidelity: dict = {}
    # two groups in flight, as a Ray actor runs them: one group's WebP encoding and writing
    # overlap the next group's GPU stages (the Compressor's GPU lock keeps those one at a time)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="sogs-group") as pool:
        futures = [pool.submit(run_group, compressor, spec, sources, plan.levels,
                               lambda name, pkg: write_folder(pkg, os.path.join(folder, name)))
                   for spec in plan.groups]
        try:
            for fut in as_completed(futures):
                res = fut.result()
                results.append(res)
                for k, v in res.seconds.items():
                    seconds[k] = seconds.get(k, 0.0) + v
                fidelity = worst(fidelity, res.fidelity)
                if progress is not None:
                    progress(len(results), len(plan.groups))
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    meta = lod_meta(plan.tree, results, plan.levels, settings.chunks)
    meta_bytes = write_lod_meta(meta, lambda data: atomic_write(meta_path, data))
    seconds["total"] = time.perf_counter() - t0
    return StreamedResult(output=meta_path, count=plan.count, counts=meta["counts"], groups=len(plan.groups),
                          files=len(meta["filenames"]), input_bytes=sum(s.input_bytes for s in sources),
                          output_bytes=meta_bytes + sum(sum(r.bytes) for r in results), seconds=seconds,
                          fidelity=fidelity, input_format=sources[0].format, ranged=sources[0].ranged)
