"""A streamed SOG (lod-meta.json + SOG v2 folders: `0_g` per chunk group at level 0, `k_b` per
bucket of 2^k groups at level k), written from one huge scene, or from several inputs that are
its levels (finest first).

The steps, each usable on its own so that the Ray backfill can spread the groups over a
cluster (`ray_jobs/streamed.py`) while `write_streamed` runs them here:

1. `LevelSource`: each input, mapped and read by ranges when it is a PLY larger than the
   memory budget (positions only, 12 bytes a splat), else read whole.
2. `plan_streamed`: the chunk tree over level 0's centres, its leaves packed into groups;
   other given levels routed into the same leaves. A `GroupSpec` names one group's rows.
3. `run_group`: a group's splats gathered, its coarser levels made (or taken from the given
   levels), level 0 written (`chunk.compress_group`); `run_groups` does several groups with
   their levels made in one call (on a GPU: `groups_per_decimation`).
4. `schedule.StreamedSchedule` + `chunk.compress_bucket`: level k's runs of 2^k neighbouring
   groups packed into one file, so every level's files hold about a group's worth of splats
   (fewer, fuller files than one per group and level: smaller output, see bench/NOTES.md).
5. `lod_meta` + `write_lod_meta`: the index, written last, atomically.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from sogs_core.formats import is_sog_format, read_scene
from sogs_core.formats.ply.rows import open_ply_rows
from sogs_core.formats.atomic import atomic_write
from sogs_core.formats.sog.package import write_folder
from sogs_core.model.splats import Splats
from sogs_core.formats.lod_meta.write import META_NAME, lod_meta, write_lod_meta
from sogs_core.pipeline.streamed.chunk import (FileResult, FolderWriter, GroupResult, build_levels_batch,
                                               compress_bucket, compress_group, worst)
from sogs_core.pipeline.streamed.schedule import BucketUnit, StreamedSchedule
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


def run_group(compressor, spec: GroupSpec, sources: list[LevelSource], levels: int,
              write: FolderWriter) -> GroupResult:
    """Gather one group's splats, make or take its levels, write level 0 (the coarser levels
    come back in the result, for the buckets that pack them)."""
    t0 = time.perf_counter()
    base = sources[0].gather(np.concatenate(spec.rows[0]))
    given = None
    if len(sources) > 1:
        given = [(base, [len(r) for r in spec.rows[0]])]
        for src, rows in zip(sources[1:], spec.rows[1:]):
            given.append((src.gather(np.concatenate(rows)), [len(r) for r in rows]))
    read = time.perf_counter() - t0
    res = compress_group(compressor, spec.group, spec.leaves, base, [len(r) for r in spec.rows[0]],
                         levels, write, given, sog_input=is_sog_format(sources[0].format))
    res.seconds["read"] = res.seconds.get("read", 0.0) + read
    return res


#: chunk groups whose levels one call makes on a GPU (`chunk.build_levels_batch`), and the
#: splats such a call holds at most; a CPU makes them one group at a time (its merge is bound by
#: arithmetic, not by launches)
GROUPS_PER_DECIMATION_CUDA = 8
DECIMATION_SPLATS = 1 << 23


def groups_per_decimation(device) -> int:
    """How many chunk groups `write_streamed` decimates in one call on `device`."""
    return GROUPS_PER_DECIMATION_CUDA if getattr(device, "type", str(device)) == "cuda" else 1


def run_groups(compressor, specs: list[GroupSpec], sources: list[LevelSource], levels: int,
               write: FolderWriter) -> list[GroupResult]:
    """`run_group` for several groups, their coarser levels made in one call under the GPU
    lock (`build_levels_batch`); the decimation's seconds are shared out evenly. Levels given
    as inputs need no decimation: those groups go one by one."""
    if len(specs) == 1 or len(sources) > 1:
        return [run_group(compressor, spec, sources, levels, write) for spec in specs]
    t0 = time.perf_counter()
    bases = [sources[0].gather(np.concatenate(spec.rows[0])) for spec in specs]
    read = (time.perf_counter() - t0) / len(specs)
    sizes = [[len(r) for r in spec.rows[0]] for spec in specs]
    with compressor.gpu_lock(), torch.no_grad():
        t1 = time.perf_counter()          # the decimation itself, not the wait for the lock
        made = build_levels_batch(list(zip(bases, sizes)), levels, compressor.device)
        decimate = (time.perf_counter() - t1) / len(specs)
    results = []
    for spec, base, leaf_sizes, level_splats in zip(specs, bases, sizes, made):
        res = compress_group(compressor, spec.group, spec.leaves, base, leaf_sizes, levels, write, level_splats,
                             sog_input=is_sog_format(sources[0].format))
        res.seconds["read"] = res.seconds.get("read", 0.0) + read
        res.seconds["decimate"] = decimate
        results.append(res)
    return results


def add_seconds(total: dict, more: dict) -> None:
    for k, v in more.items():
        total[k] = total.get(k, 0.0) + v


@dataclass
class StreamedResult:
    output: str                        # the lod-meta.json written
    count: int                         # level-0 splats of the input
    counts: list[int]                  # splats written per level
    groups: int
    files: int
    input_bytes: int
    output_bytes: int
    seconds: dict
    fidelity: dict
    input_format: str
    ranged: bool

    @property
    def dropped_invisible(self) -> int:
        """Level-0 splats not written: stored with opacity 0 below --quality 100
        (`quantize.visibility`), as `compress` counts them."""
        return self.count - self.counts[0] if self.counts else 0


def output_folder(out: str) -> str:
    """`out/lod-meta.json` or `out/` -> the folder the streamed SOG goes into."""
    return os.path.dirname(out) or "." if os.path.basename(out) == META_NAME else out


def write_streamed(compressor, inputs: list[str], out: str, settings: StreamedSettings,
                   memory_budget: int = DEFAULT_MEMORY_BUDGET,
                   progress: Optional[Callable[[int, int], None]] = None,
                   decimation_groups: Optional[int] = None) -> StreamedResult:
    """Inputs (one scene, or its levels finest first) -> a streamed SOG under `out`, the units
    (groups, then buckets as they complete) two at a time on this process's compressor; a
    group unit takes up to `decimation_groups` groups (default `groups_per_decimation`) whose
    levels are made in one call. lod-meta.json is removed first and written last, so an
    interrupted run never leaves an index that looks complete."""
    folder = output_folder(out)
    meta_path = os.path.join(folder, META_NAME)
    os.makedirs(folder, exist_ok=True)
    if os.path.exists(meta_path):
        os.remove(meta_path)
    t0 = time.perf_counter()
    sources = [LevelSource(p, memory_budget) for p in inputs]
    plan = plan_streamed(sources, settings, compressor.device)
    seconds = {"plan": time.perf_counter() - t0}
    files: list[FileResult] = []
    bounds: dict[int, list] = {}
    write = lambda name, pkg: write_folder(pkg, os.path.join(folder, name))   # noqa: E731
    # two units in flight, as a Ray actor runs them: one's WebP encoding and writing overlap the
    # next one's GPU stages (the Compressor's GPU lock keeps those one at a time)
    schedule = StreamedSchedule(plan.groups)
    batch = decimation_groups or groups_per_decimation(compressor.device)
    running: set = set()
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="sogs-group") as pool:
        try:
            while schedule or running:
                while len(running) < 2 and schedule:
                    unit = schedule.next()
                    if isinstance(unit, BucketUnit):
                        running.add(pool.submit(compress_bucket, compressor, unit.level, unit.bucket,
                                                unit.payloads, write))
                    else:
                        specs = [unit.spec] + [u.spec for u in schedule.more_groups(
                            batch - 1, DECIMATION_SPLATS - unit.spec.splats, lambda u: u.spec.splats)]
                        running.add(pool.submit(run_groups, compressor, specs, sources, plan.levels, write))
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    res = fut.result()
                    if isinstance(res, FileResult):
                        files.append(res)
                        continue
                    for group in res:
                        bounds.update(zip(group.leaves, group.bounds))
                        add_seconds(seconds, group.seconds)
                        files.append(group.file)
                        schedule.group_done(group.group, [(group.leaves, sp, c) for sp, c in group.coarse])
                        group.coarse = []
                    if progress is not None:
                        progress(schedule.groups_done, len(plan.groups))
        except BaseException:
            for f in running:
                f.cancel()
            raise
    fidelity: dict = {}
    for f in files:
        add_seconds(seconds, f.seconds)
        fidelity = worst(fidelity, f.fidelity)
    meta = lod_meta(plan.tree, files, bounds, plan.levels, settings.chunks)
    meta_bytes = write_lod_meta(meta, lambda data: atomic_write(meta_path, data))
    seconds["total"] = time.perf_counter() - t0
    return StreamedResult(output=meta_path, count=plan.count, counts=meta["counts"], groups=len(plan.groups),
                          files=len(meta["filenames"]), input_bytes=sum(s.input_bytes for s in sources),
                          output_bytes=meta_bytes + sum(f.bytes for f in files), seconds=seconds,
                          fidelity=fidelity, input_format=sources[0].format, ranged=sources[0].ranged)
