"""A streamed SOG (lod-meta.json + SOG v2 folders: `0_g` per chunk group at level 0, `k_b` per
bucket of 2^k groups at level k), written from one huge scene, or from several inputs that are
its levels (finest first).

The steps, each usable on its own so that the Ray backfill can spread the groups over a
cluster (`ray_jobs/streamed.py`) while `write_streamed` runs them here:

1. `plan.LevelSource`: each input, mapped and read by ranges when it is a PLY larger than the
   memory budget or written by several processes (positions only, 12 bytes a splat), else
   read whole.
2. `plan.plan_streamed`: the chunk tree over level 0's centres, its leaves packed into groups;
   other given levels routed into the same leaves. A `GroupSpec` names one group's rows.
3. `units.run_group`: a group's splats gathered, its coarser levels made (or taken from the given
   levels), level 0 written (`chunk.compress_group`); `run_groups` does several groups with
   their levels made in one call (on a GPU: `groups_per_decimation`).
4. `schedule.StreamedSchedule` + `chunk.compress_bucket`: level k's runs of 2^k neighbouring
   groups packed into one file, so every level's files hold about a group's worth of splats
   (fewer, fuller files than one per group and level: smaller output, see bench/NOTES.md).
5. `units.run_units` runs them in this process (`processes.WritingProcesses`: in several on
   one device, started before step 2), then `lod_meta` + `write_lod_meta`: the index, written
   last, atomically.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from sogs_core.formats.atomic import atomic_write
from sogs_core.formats.lod_meta.write import META_NAME, lod_meta, write_lod_meta
from sogs_core.pipeline.streamed.chunk import worst
from sogs_core.pipeline.streamed.mps import mps_available
from sogs_core.pipeline.streamed.plan import DEFAULT_MEMORY_BUDGET, LevelSource, plan_streamed
from sogs_core.pipeline.streamed.processes import WritingProcesses, auto_processes, split_groups, writes_here
from sogs_core.pipeline.streamed.units import DECIMATION_SPLATS, add_seconds, groups_per_decimation, run_units
from sogs_core.settings import MPS_FOR_GPU_PROCESSES, PROCESS_GPU_MEMORY_MIB, StreamedSettings


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
    ranged: bool                       # the input is a PLY above the memory budget: never read whole
    processes: int = 1                 # processes that wrote it
    mps: bool = False                  # they shared the GPU through a private MPS server

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
                   decimation_groups: Optional[int] = None, processes: Optional[int] = 1,
                   decimation_splats: int = DECIMATION_SPLATS,
                   process_gpu_mib: int = PROCESS_GPU_MEMORY_MIB,
                   write_here: Optional[bool] = None, mps: Optional[bool] = None) -> StreamedResult:
    """Inputs (one scene, or its levels finest first) -> a streamed SOG under `out`: the plan
    here, then its units (`run_units`) on this process's compressor, or with `processes` > 1
    split over that many processes on the same device (`streamed.processes`: each runs its own
    compressor on a run of groups and reads a PLY input by ranges, only its rows; the files are
    the same). `processes` None: as many as `auto_processes` says for the scene. A group
    unit takes up to `decimation_groups` groups (default `groups_per_decimation`) and
    `decimation_splats` level-0 splats (shared out between the processes): what one call holds
    on the device, not what it makes (the levels are the same either way). Several processes
    on a GPU each cap their caching allocator at `process_gpu_mib` MiB (0: no cap), and this
    one gives its cache back once the plan is made. `write_here`: with several processes, this
    one writes a run of its own too (None: `writes_here`). `mps`: several processes on a GPU
    share it through a private MPS server where this machine can start one (`streamed.mps`;
    None: `settings.MPS_FOR_GPU_PROCESSES`). lod-meta.json
    is removed first and written last, so an interrupted run never leaves an index that looks
    complete."""
    if processes is not None and processes < 1:
        raise ValueError(f"processes must be >= 1, not {processes}")
    if process_gpu_mib < 0:
        raise ValueError(f"process_gpu_mib must be >= 0 (0: no cap), not {process_gpu_mib}")
    folder = output_folder(out)
    meta_path = os.path.join(folder, META_NAME)
    os.makedirs(folder, exist_ok=True)
    if os.path.exists(meta_path):
        os.remove(meta_path)
    t0 = time.perf_counter()
    # a PLY mapped first (its header read): the count decides the processes, and where several
    # write it, this process needs only the positions for the plan (they read their own rows)
    peek = [LevelSource(p, 0) for p in inputs]
    chosen = auto_processes(compressor.device, peek[0].count) if processes is None else processes
    above_budget = peek[0].ranged and os.path.getsize(inputs[0]) > memory_budget
    sources = peek if chosen > 1 else [LevelSource(p, memory_budget) if s.ranged and os.path.getsize(p) <= memory_budget
                                       else s for p, s in zip(inputs, peek)]
    # several processes start before the plan, so that their start overlaps it
    share_by_mps = (MPS_FOR_GPU_PROCESSES if mps is None else mps) and compressor.device.type == "cuda" \
        and chosen > 1 and mps_available()
    team = WritingProcesses(compressor, inputs, chosen, process_gpu_mib, share_by_mps) if chosen > 1 else None
    try:
        plan = plan_streamed(sources, settings, compressor.device)
        if team is not None and compressor.device.type == "cuda":
            torch.cuda.empty_cache()         # the plan's blocks: the processes need the room
        seconds = {"plan": time.perf_counter() - t0}
        batch = decimation_groups or groups_per_decimation(compressor.device)
        report = None if progress is None else (lambda done: progress(done, len(plan.groups)))   # noqa: E731
        here = team is not None and (writes_here(compressor.device) if write_here is None else write_here)
        runs = split_groups(plan.groups, chosen + here) if chosen > 1 else [plan.groups]
        if len(runs) == 1:                   # one process, or a single group to share out
            if team is not None:
                team.close()
            done = run_units(compressor, sources, plan.groups, plan.levels, len(plan.groups), folder, batch,
                             decimation_splats, progress=report)
            if done.shared:                  # every group ran here, so every bucket must be complete
                raise RuntimeError(f"buckets left unpacked: {sorted(done.shared)}")
        else:
            done = team.run(plan, folder, batch, runs, report, decimation_splats, here=sources if here else None)
    finally:
        if team is not None:
            team.close()
    add_seconds(seconds, done.seconds)
    fidelity: dict = {}
    for f in done.files:
        fidelity = worst(fidelity, f.fidelity)
    meta = lod_meta(plan.tree, done.files, done.bounds, plan.levels, settings.chunks)
    meta_bytes = write_lod_meta(meta, lambda data: atomic_write(meta_path, data))
    seconds["total"] = time.perf_counter() - t0
    return StreamedResult(output=meta_path, count=plan.count, counts=meta["counts"], groups=len(plan.groups),
                          files=len(meta["filenames"]), input_bytes=sum(s.input_bytes for s in sources),
                          output_bytes=meta_bytes + sum(f.bytes for f in done.files), seconds=seconds,
                          fidelity=fidelity, input_format=sources[0].format, ranged=above_budget,
                          processes=len(runs), mps=len(runs) > 1 and team.mps_used)
