"""One streamed SOG written by several processes sharing one device.

Why: a single process writes a streamed SOG with every kernel launched from one Python
interpreter, and launching, not the GPU, bounds it (bench/NOTES.md, session 25: a second thread
inside the GPU stages made it slower; four Ray actors on one GPU wrote the 32M scene twice as
fast as one). Processes have an interpreter each.

How: the plan is made once, here; the groups are cut into runs of whole level-(L-1) buckets
(2^(L-1) consecutive groups), so every file of a level, whose runs belong to one bucket, is
written by exactly one process, and the files are those one process writes. Each process
(spawned: CUDA does not survive a fork) opens the inputs itself (a huge PLY is mapped and read
by ranges, so only its rows are ever read), builds its own compressor on the device, runs its
runs of buckets (`units.run_units`) and hands back what lod-meta.json needs.
"""
from __future__ import annotations

import multiprocessing
import queue
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Optional

from sogs_core.pipeline.streamed.plan import GroupSpec, LevelSource, StreamedPlan
from sogs_core.pipeline.streamed.units import DECIMATION_SPLATS, UnitsDone, add_seconds, run_units


def split_groups(groups: list[GroupSpec], levels: int, parts: int) -> list[list[GroupSpec]]:
    """The groups cut into at most `parts` runs of whole coarsest-level buckets (2^(levels-1)
    consecutive groups), each run about the same number of level-0 splats."""
    span = 1 << (levels - 1)
    blocks = [groups[i:i + span] for i in range(0, len(groups), span)]
    parts = max(1, min(parts, len(blocks)))
    total = sum(g.splats for g in groups)
    runs: list[list[GroupSpec]] = [[]]
    done = 0
    for block in blocks:
        # start the next run once this one holds its share (and runs are left to fill)
        if runs[-1] and len(runs) < parts and done >= total * len(runs) / parts:
            runs.append([])
        runs[-1].extend(block)
        done += sum(g.splats for g in block)
    return runs


def _run_part(device: str, settings, inputs: list[str], memory_budget: int, groups: list[GroupSpec],
              levels: int, n_groups: int, folder: str, batch: int, splats_per_batch: int,
              progress: Optional["queue.Queue"]) -> UnitsDone:
    """One process's share: its own compressor and sources, its runs of buckets."""
    from sogs_core.pipeline.compressor import Compressor

    with Compressor(device=device, settings=settings, warm=False) as comp:
        sources = [LevelSource(p, memory_budget) for p in inputs]
        last = [0]

        def report(done: int) -> None:
            if progress is not None:
                progress.put(done - last[0])
                last[0] = done

        return run_units(comp, sources, groups, levels, n_groups, folder, batch, splats_per_batch, report)


def run_in_processes(compressor, inputs: list[str], memory_budget: int, plan: StreamedPlan, folder: str,
                     batch: int, runs: list[list[GroupSpec]],
                     progress: Optional[Callable[[int], None]] = None) -> UnitsDone:
    """`plan`'s units, one spawned process per run of groups (`split_groups`), on `compressor`'s
    device and settings; each decimates up to batch / processes groups (and splats) a call, so
    that the device holds about what one process alone would. progress(groups done) as groups
    finish anywhere."""
    each_batch = max(1, batch // len(runs))
    each_splats = max(1, DECIMATION_SPLATS // len(runs))
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        counts = manager.Queue() if progress is not None else None
        stop = threading.Event()

        def relay() -> None:
            done = 0
            while True:                      # until the processes are done and every count is in
                try:
                    done += counts.get(timeout=0.2)
                except queue.Empty:
                    if stop.is_set():
                        return
                    continue
                progress(done)

        watcher = threading.Thread(target=relay, daemon=True) if counts is not None else None
        if watcher is not None:
            watcher.start()
        try:
            with ProcessPoolExecutor(max_workers=len(runs), mp_context=ctx) as pool:
                futures = [pool.submit(_run_part, str(compressor.device), compressor.settings, inputs, memory_budget,
                                       run, plan.levels, len(plan.groups), folder, each_batch, each_splats, counts)
                           for run in runs]
                parts = [f.result() for f in futures]
        finally:
            stop.set()
            if watcher is not None:
                watcher.join()
    merged = UnitsDone([], {}, {})
    for part in parts:
        merged.files.extend(part.files)
        merged.bounds.update(part.bounds)
        add_seconds(merged.seconds, part.seconds)
    return merged
