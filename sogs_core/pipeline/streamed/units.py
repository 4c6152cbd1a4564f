"""A streamed SOG's units run in one process: a chunk group (`run_group`, or several whose levels
are made in one call: `run_groups`) and the buckets of coarse levels their runs complete,
`run_units` driving them from a `StreamedSchedule`, two in flight."""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from sogs_core.formats import is_sog_format
from sogs_core.formats.sog.package import write_folder
from sogs_core.pipeline.streamed.chunk import (FileResult, FolderWriter, GroupResult, build_levels_batch,
                                               compress_bucket, compress_group)
from sogs_core.pipeline.streamed.plan import GroupSpec, LevelSource
from sogs_core.pipeline.streamed.schedule import BucketUnit, StreamedSchedule
from sogs_core.settings import GROUPS_PER_DECIMATION_CUDA


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


#: the splats one decimation call of several chunk groups holds at most (`run_groups`; how many
#: groups: `settings.GROUPS_PER_DECIMATION_CUDA`)
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
    for spec, base, leaf_sizes, group_levels in zip(specs, bases, sizes, made):
        res = compress_group(compressor, spec.group, spec.leaves, base, leaf_sizes, levels, write,
                             sog_input=is_sog_format(sources[0].format), made=group_levels)
        res.seconds["read"] = res.seconds.get("read", 0.0) + read
        res.seconds["decimate"] = decimate
        results.append(res)
    return results


def folder_writer(folder: str) -> FolderWriter:
    """Each file's SOG folder written under `folder` (`write_folder`: meta.json last)."""
    return lambda name, pkg: write_folder(pkg, os.path.join(folder, name))


def add_seconds(total: dict, more: dict) -> None:
    for k, v in more.items():
        total[k] = total.get(k, 0.0) + v


@dataclass
class UnitsDone:
    """What running some of a scene's units produced: every file written, each leaf's bounds,
    the stage seconds summed, and the coarse payloads of buckets whose groups were not all
    here ((level, bucket) -> {group: payload}; empty when every group of the scene ran here)."""

    files: list[FileResult]
    bounds: dict[int, list]
    seconds: dict
    shared: dict = field(default_factory=dict)


def run_units(compressor, sources: list[LevelSource], groups: list[GroupSpec], levels: int, n_groups: int,
              folder: str, batch: int, splats_per_batch: int = DECIMATION_SPLATS,
              progress: Optional[Callable[[int], None]] = None,
              share: Optional[Callable[[dict], None]] = None,
              stop: Optional[threading.Event] = None) -> UnitsDone:
    """The groups' units (the groups, then their buckets as they complete; `n_groups`: the
    scene's groups in all) two at a time on this process's compressor: one's WebP encoding
    and writing overlap the next one's GPU stages (the Compressor's GPU lock keeps those one at
    a time), as a Ray actor runs them. A group unit takes up to `batch` groups (at most
    `splats_per_batch` splats) whose levels are made in one call. progress(groups done).
    share(payloads): the coarse payloads of buckets that need groups not run here, handed over
    as soon as every group of theirs here is done (`BucketPacker.hand_off`); without it they
    come back in `UnitsDone.shared`. `stop`: once set, no unit more starts (an error says so)."""
    files: list[FileResult] = []
    bounds: dict[int, list] = {}
    seconds: dict = {}
    write = folder_writer(folder)
    schedule = StreamedSchedule(groups, n_groups)
    own = {spec.group for spec in groups}
    running: set = set()
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="sogs-group") as pool:
        try:
            while schedule or running:
                if stop is not None and stop.is_set():
                    raise RuntimeError("stopped: another run of this streamed write failed")
                while len(running) < 2 and schedule:
                    unit = schedule.next()
                    if isinstance(unit, BucketUnit):
                        running.add(pool.submit(compress_bucket, compressor, unit.level, unit.bucket,
                                                unit.payloads, write))
                    else:
                        specs = [unit.spec] + [u.spec for u in schedule.more_groups(
                            batch - 1, splats_per_batch - unit.spec.splats, lambda u: u.spec.splats)]
                        running.add(pool.submit(run_groups, compressor, specs, sources, levels, write))
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
                    if share is not None and (foreign := schedule.packer.hand_off(own)):
                        share(foreign)
                    if progress is not None:
                        progress(schedule.groups_done)
        except BaseException:
            for f in running:
                f.cancel()
            raise
    for f in files:
        add_seconds(seconds, f.seconds)
    return UnitsDone(files, bounds, seconds, dict(schedule.packer.waiting))
