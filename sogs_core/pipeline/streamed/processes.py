"""One streamed SOG written by several processes sharing one device.

Why: a single process writes a streamed SOG with every kernel launched from one Python
interpreter, and launching, not the GPU, bounds it (bench/NOTES.md, session 25: a second thread
inside the GPU stages made it slower; four Ray actors on one GPU wrote the 32M scene twice as
fast as one); on a CPU one process keeps one core busy most of the time. Processes have an
interpreter each.

How: the processes are started first (spawned: CUDA does not survive a fork), and each opens
the inputs itself (a PLY of any size mapped and read by ranges, so only its rows are ever read)
and builds its own compressor on the device while the plan is made once, here
(`WritingProcesses`); the groups are cut into consecutive runs whose largest is as small as it
can be (`split_groups`). Each process runs its groups and the buckets of coarse levels they
complete (`units.run_units`), and hands back what lod-meta.json needs. The few buckets (at
most one per level and cut) whose groups two runs share are packed here: each run does its
groups of those buckets first (`edge_first`) and hands their coarse splats over at once, so
this process packs them while the runs go on (`SharedBuckets`), not after them. The files are
those one process writes.
"""
from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

import torch

from sogs_core.model.device import cuda_index
from sogs_core.pipeline.process_server import writers_context
from sogs_core.pipeline.streamed.mps import MpsTicket, PrivateMps
from sogs_core.pipeline.streamed.parent_death import end_with_parent
from sogs_core.pipeline.streamed.plan import GroupSpec, LevelSource, StreamedPlan
from sogs_core.pipeline.streamed.schedule import BucketPacker
from sogs_core.pipeline.streamed.chunk import FileResult, bucket_groups, bucket_of, compress_bucket
from sogs_core.pipeline.streamed.units import DECIMATION_SPLATS, UnitsDone, add_seconds, folder_writer, run_units
from sogs_core.settings import (AUTO_GPU_PROCESSES, AUTO_GPU_SHARED_MIN_MEMORY, AUTO_GPU_SHARED_MIN_SPLATS,
                                AUTO_PROCESSES_MIN_SPLATS, WRITE_HERE_ON_GPU)


def split_groups(groups: list[GroupSpec], parts: int) -> list[list[GroupSpec]]:
    """The groups cut into at most `parts` consecutive runs, the largest run (in level-0 splats)
    as small as it can be: the processes finish when the largest does. Why groups and not whole
    coarsest buckets (2^(levels-1) groups): buckets are coarse, and 26 groups in buckets of 8 ran
    as 16 and 10 groups on two processes where 13 and 13 fit; a bucket that two runs share is
    packed by the calling process from the coarse splats both hand over (`SharedBuckets`)."""
    sizes = [g.splats for g in groups]
    ends = _balanced_cuts(sizes, max(1, min(parts, len(groups))))
    return [groups[a:b] for a, b in zip([0] + ends[:-1], ends)]


def edge_first(run: list[GroupSpec], n_groups: int, levels: int) -> list[GroupSpec]:
    """A run's groups with those first whose coarsest bucket another run shares (at its two
    ends, at most 2^(levels-1) - 1 groups each): their coarse payloads then leave early
    (`run_units`' share) and the shared buckets are packed while the runs go on, not after
    them. The files are the same in any order."""
    if levels < 2:
        return list(run)
    own = {g.group for g in run}
    top = levels - 1
    shared = [g for g in run if not set(bucket_groups(top, bucket_of(g.group, top), n_groups)) <= own]
    return shared + [g for g in run if g not in shared]


def _balanced_cuts(sizes: list[int], parts: int) -> list[int]:
    """The ends of at most `parts` consecutive runs of `sizes` whose largest sum is smallest
    (the linear partition problem): the smallest feasible largest sum by bisection, each run
    then filled greedily up to it. O(n log(sum)), for scenes of thousands of groups."""
    def runs_within(limit: int) -> list[int]:
        ends, total = [], 0
        for i, v in enumerate(sizes):
            if total + v > limit:
                ends.append(i)
                total = 0
            total += v
        return ends + [len(sizes)]

    lo, hi = max(sizes, default=0), sum(sizes)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(runs_within(mid)) <= parts:
            hi = mid
        else:
            lo = mid + 1
    return runs_within(lo)


def cap_gpu_memory(device: str, mib: int, uncap: bool = False) -> None:
    """This process's caching allocator on CUDA `device` held to `mib` MiB (0: no cap): it frees
    its cached blocks and retries before it grows past them, and raises out of memory where one
    call alone needs more. `uncap`: the whole device again (a cap given back)."""
    if mib <= 0 and not uncap:
        return
    dev = torch.device(device)
    index = cuda_index(dev)
    total = torch.cuda.get_device_properties(index).total_memory
    torch.cuda.set_per_process_memory_fraction(1.0 if uncap else min(1.0, mib * 2**20 / total), index)


def _run_part(part: int, device: str, settings, inputs: list[str], threads: Optional[int], gpu_mib: int,
              inbox, out, mps: Optional[MpsTicket] = None, gpu_slots: int = 1,
              environment: Optional[dict[str, str]] = None) -> None:
    """One process's share: its own compressor and sources, made while the parent plans; then
    its run of groups, when `inbox` hands it over ((groups, levels, groups in all, folder,
    groups and splats a decimation call); None: nothing for this process), with torch's CPU
    work on `threads` threads (None: torch's default) and, on a GPU, its allocator capped at
    `gpu_mib` MiB (0: not capped), and through the private MPS server of `mps` where its probe
    proved it (before anything here touches CUDA). Everything it has to say goes into the queue
    `out` (`run_and_report`), or ("failed", part, the exception). `gpu_slots`: its compressor's
    (the calling process's). The death of the writer that asked for it ends it too
    (`parent_death.end_with_parent`). `environment`: the writer's, taken as this process's
    before anything reads it (a fork of the process server has the server's, from before the
    writer set its allocator's settings or --max-scene-splats)."""
    end_with_parent()
    if environment is not None:
        os.environ.clear()
        os.environ.update(environment)
    try:
        if mps is not None:
            mps.join()
        from sogs_core.pipeline.compressor import Compressor

        if threads is not None:
            torch.set_num_threads(threads)
        if torch.device(device).type == "cuda":
            cap_gpu_memory(device, gpu_mib)

        with Compressor(device=device, settings=settings, warm=False, gpu_slots=gpu_slots) as comp:
            # a PLY mapped and read by ranges whatever its size: only this run's rows are read,
            # not the whole file once per process (3.5 s of 13.56M splats on one core)
            sources = [LevelSource(p, 0) for p in inputs]
            job = inbox.get()
            if job is None:
                return
            run_and_report(comp, sources, job, part, out.put)
    except BaseException as exc:      # noqa: BLE001  (handed to the parent, which raises it)
        exc = over_cap(exc, gpu_mib)
        out.put(("failed", part, exc if _picklable(exc) else RuntimeError(f"{type(exc).__name__}: {exc}")))


def run_and_report(compressor, sources: list[LevelSource], job: tuple, part: int, put: Callable[[tuple], None],
                   stop: Optional[threading.Event] = None) -> None:
    """One run (`job`: groups, levels, groups in all, folder, groups and splats a decimation
    call) on `compressor`, everything said through `put` as the parent reads it: ("groups", n)
    as groups finish, ("shared", part, payloads) as buckets other runs share are ready to hand
    over, then ("done", part, UnitsDone). `stop`: `run_units`' stop."""
    groups, levels, n_groups, folder, batch, splats_per_batch = job
    last = [0]

    def report(done: int) -> None:                # groups done so far -> groups done since last time
        put(("groups", done - last[0]))
        last[0] = done

    put(("done", part, run_units(compressor, sources, groups, levels, n_groups, folder, batch, splats_per_batch,
                                 report, share=lambda payloads: put(("shared", part, payloads)), stop=stop)))


def over_cap(exc: BaseException, gpu_mib: int) -> BaseException:
    """A writing process's error as its user should read it: running out of device memory under
    the cap says which setting to raise (torch's own message names only the fraction)."""
    if gpu_mib > 0 and isinstance(exc, torch.OutOfMemoryError):
        return RuntimeError(f"a writing process ran out of device memory within its cap of {gpu_mib} MiB: "
                            f"raise --process-gpu-memory (0: no cap) or lower --processes ({exc})")
    return exc


def _picklable(exc: BaseException) -> bool:
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return True
    except Exception:      # noqa: BLE001
        return False


def auto_processes(device, splats: int) -> int:
    """How many processes write a streamed SOG of `splats` level-0 splats on `device` when the
    caller leaves it open: on a CPU, one per thread torch would use (one process keeps only one
    core busy most of the time), for scenes of at least AUTO_PROCESSES_MIN_SPLATS; on a GPU
    AUTO_GPU_PROCESSES for scenes of at least AUTO_GPU_SHARED_MIN_SPLATS where the device has
    AUTO_GPU_SHARED_MIN_MEMORY (each adds its own device memory: the writer caps each one's
    allocator, `settings.PROCESS_GPU_MEMORY_MIB`), else one."""
    kind = getattr(device, "type", str(device))
    if kind == "cpu":
        return max(1, torch.get_num_threads()) if splats >= AUTO_PROCESSES_MIN_SPLATS else 1
    if kind == "cuda" and splats >= AUTO_GPU_SHARED_MIN_SPLATS and _device_memory(device) >= AUTO_GPU_SHARED_MIN_MEMORY:
        return AUTO_GPU_PROCESSES
    return 1


def _device_memory(device) -> int:
    """The CUDA device's total memory in bytes (0 where it cannot be read)."""
    try:
        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    except (RuntimeError, AssertionError, ValueError):
        return 0


def writes_here(device) -> bool:
    """Whether the calling process writes a run of its own beside its `WritingProcesses` by
    default: only on a GPU, where its compressor is warm while each of theirs pays seconds of
    first use (a fresh process's first chunk group: 5.6 s against 0.6 s, bench/NOTES.md,
    session 40), and only once `settings.WRITE_HERE_ON_GPU` says so; on a CPU its thread would
    only take a core from them."""
    return WRITE_HERE_ON_GPU and getattr(device, "type", str(device)) == "cuda"


def cpu_threads_each(processes: int) -> int:
    """torch's CPU threads for each of `processes` processes on a CPU device: this process's
    threads shared out, at least one. Why: each process alone would start one thread per core,
    and torch's threads slow down many times over when there are more of them than cores
    (bench/NOTES.md, session 28, has the streamed SOG's times either way)."""
    return max(1, torch.get_num_threads() // max(1, processes))


class WritingProcesses:
    """`count` processes started on `compressor`'s device and settings before the plan exists:
    each is forked from the process server (`process_server`: torch and the library imported
    there once, so a start is its context and compressor, not seconds of imports), builds its
    compressor and opens the inputs while this process plans, then waits for its run of groups
    (`run`). On a GPU each caps its caching allocator at
    `gpu_mib` MiB (0: no cap), so that what they hold together stays bounded, and with `mps`
    they share it through a private MPS server (`mps.PrivateMps`: their kernels side by side,
    not by turns; `mps_used` says whether it started). `close` (or leaving the `with`) ends
    whatever is still running: after a failure nothing waits for the others to finish. If this
    process dies (killed, so that no `close` runs), each of them ends too (`parent_death`)."""

    def __init__(self, compressor, inputs: list[str], count: int, gpu_mib: int = 0, mps: bool = False) -> None:
        self.compressor = compressor
        self.gpu_mib = gpu_mib
        threads = cpu_threads_each(count) if compressor.device.type == "cpu" else None
        ctx = writers_context()           # forks of a server with torch imported (`process_server`)
        self.out = ctx.Queue()
        self.inboxes = [ctx.Queue() for _ in range(count)]
        self.mps = None
        if mps and compressor.device.type == "cuda":
            try:
                self.mps = PrivateMps(cuda_index(compressor.device), ctx)
            except OSError:                   # its folders: without MPS, as without the program
                self.mps = None
        ticket = self.mps.ticket if self.mps is not None else None
        self.procs = [ctx.Process(target=_run_part, name=f"sogs-streamed-{k}",
                                  args=(k, str(compressor.device), compressor.settings, inputs, threads, gpu_mib,
                                        self.inboxes[k], self.out, ticket, compressor.gpu_slots, dict(os.environ)))
                      for k in range(count)]
        self.finished = False
        # started from a thread: the first start waits for the process server's imports (when
        # nothing started it early), which the plan need not wait for
        self._start_error: Optional[BaseException] = None
        self._starter = threading.Thread(target=self._start_all, name="sogs-streamed-start", daemon=True)
        self._starter.start()

    def _start_all(self) -> None:
        try:
            for proc in self.procs:
                proc.start()
        except BaseException as exc:      # noqa: BLE001  (raised by `run`)
            self._start_error = exc

    def wait_started(self) -> list[int]:
        """Every process started: their pids (raises what starting them raised)."""
        self._starter.join()
        if self._start_error is not None:
            raise self._start_error
        return [proc.pid for proc in self.procs]

    def __enter__(self) -> "WritingProcesses":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, plan: StreamedPlan, folder: str, batch: int, runs: list[list[GroupSpec]],
            progress: Optional[Callable[[int], None]] = None,
            decimation_splats: int = DECIMATION_SPLATS,
            here: Optional[list[LevelSource]] = None) -> UnitsDone:
        """`plan`'s units, one run a process (its groups that share a bucket with another run
        first: `edge_first`; processes left without a run are let go), and the buckets the runs
        share packed here as their payloads come in, while the runs go on. `here`: this
        process's sources, and runs[0] is run here too, on its own compressor, which is warm
        while the others are still starting (the rest go to the processes in order). Each
        decimates up to batch / runs groups (and decimation_splats / runs splats) a call, so
        that the device holds about what one process alone would. progress(groups done) as
        groups finish anywhere. The first run to fail stops the others, and its error is raised."""
        self.wait_started()
        own = 1 if here is not None else 0
        if len(runs) - own > len(self.procs):
            raise ValueError(f"{len(runs) - own} runs for {len(self.procs)} processes")
        each_batch = max(1, batch // len(runs))
        each_splats = max(1, decimation_splats // len(runs))
        jobs = [(edge_first(run, len(plan.groups), plan.levels), plan.levels, len(plan.groups), folder,
                 each_batch, each_splats) for run in runs]
        for k, inbox in enumerate(self.inboxes):
            inbox.put(jobs[k + own] if k + own < len(runs) else None)
        parts: dict[int, UnitsDone] = {}
        local: queue.Queue = queue.Queue()        # what the run here says, as the processes say it
        stop = threading.Event()                  # the run here ends early once anything failed
        with SharedBuckets(self.compressor, len(plan.groups), folder, len(self.procs) + own, self.gpu_mib) as shared, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="sogs-run-here") as pool:
            if own:
                pool.submit(self._run_here, here, jobs[0], local, stop)
            try:
                self._gather(runs, parts, own, local, shared, progress)
            except BaseException:
                stop.set()
                raise
            self.finished = True
            packed = shared.finish()
        merged = UnitsDone([], {}, {})
        for k in range(len(runs)):
            merged.files.extend(parts[k].files)
            merged.bounds.update(parts[k].bounds)
            add_seconds(merged.seconds, parts[k].seconds)
        for f in packed:
            merged.files.append(f)
            add_seconds(merged.seconds, f.seconds)
        return merged

    def _gather(self, runs: list, parts: dict, own: int, local: queue.Queue, shared: "SharedBuckets",
                progress: Optional[Callable[[int], None]]) -> None:
        """Read what the runs say (the processes' queue, and `local` for a run here: run k of
        process k - own) until every run is done: progress, shared payloads, results, errors."""
        groups_done = 0
        while len(parts) < len(runs):
            try:
                message = local.get_nowait()
            except queue.Empty:
                try:
                    message = self.out.get(timeout=0.2)
                except queue.Empty:
                    dead = [p for k, p in enumerate(self.procs) if k + own < len(runs)
                            and k + own not in parts and not p.is_alive()]
                    if dead and self.out.empty():
                        raise RuntimeError(f"{dead[0].name} ended without a result (exit code {dead[0].exitcode})")
                    continue
                if message[0] in ("shared", "done", "failed"):
                    message = (message[0], message[1] + own, message[2])
            if message[0] == "groups":
                groups_done += message[1]
                if progress is not None:
                    progress(groups_done)
            elif message[0] == "shared":
                shared.add(message[2])
            elif message[0] == "done":
                parts[message[1]] = message[2]
                shared.add(message[2].shared)        # what it did not hand over earlier (none, as run)
            else:
                raise message[2]

    def _run_here(self, sources: list[LevelSource], job: tuple, local: queue.Queue, stop: threading.Event) -> None:
        """Run 0 (`job`) on this process's compressor, saying what it does into `local` as a
        writing process says it into its queue; it ends early once `stop` is set."""
        try:
            run_and_report(self.compressor, sources, job, 0, local.put, stop)
        except BaseException as exc:      # noqa: BLE001  (raised by the loop that reads `local`)
            local.put(("failed", 0, exc))

    @property
    def mps_used(self) -> bool:
        """Whether the processes were told to share the device through the private MPS server."""
        return self.mps is not None and self.mps.used

    def close(self) -> None:
        """Every process ended: those done (or let go) joined, any other stopped first; then
        the private MPS server, if any, quit."""
        self._starter.join()
        for proc in self.procs:
            if proc.is_alive() and not self.finished:
                proc.terminate()
        for proc in self.procs:
            if proc.pid is not None:
                proc.join()
        if self.mps is not None:
            self.mps.stop()


class SharedBuckets:
    """The buckets whose groups several runs hold, packed on this process's compressor (two in
    flight) as soon as the payloads the runs hand over complete one (`add`), so that they
    overlap the runs instead of following them. While it is open this process works beside
    the writing processes as one more of them: on a GPU its allocator is capped as theirs
    (`gpu_mib`, given back uncapped after), on a CPU it takes their share of torch's threads
    (`processes` sharing them; restored after). `finish` waits for every file; a bucket still
    missing a group's payload then is an error, never a file silently left out."""

    def __init__(self, compressor, n_groups: int, folder: str, processes: int = 1, gpu_mib: int = 0) -> None:
        self.compressor, self.n_groups, self.folder = compressor, n_groups, folder
        self.packer = BucketPacker(n_groups)
        self.futures: list = []
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sogs-shared")
        self.write = folder_writer(folder)
        self.device = getattr(compressor, "device", None)
        self.threads = None
        if self.device is not None and self.device.type == "cuda":
            cap_gpu_memory(str(self.device), gpu_mib)
        elif self.device is not None and self.device.type == "cpu":
            self.threads = torch.get_num_threads()
            torch.set_num_threads(cpu_threads_each(processes))

    def __enter__(self) -> "SharedBuckets":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add(self, payloads: dict) -> None:
        """Payloads a run handed over ((level, bucket) -> {group: payload}); the buckets they
        complete start packing."""
        for level, bucket, parts in self.packer.absorb(payloads):
            self.futures.append(self.pool.submit(compress_bucket, self.compressor, level, bucket, parts, self.write))

    def finish(self) -> list[FileResult]:
        """Every shared bucket's file, once all are written."""
        files = [f.result() for f in self.futures]
        if self.packer.waiting:
            (level, bucket), payloads = min(self.packer.waiting.items())
            missing = [g for g in bucket_groups(level, bucket, self.n_groups) if g not in payloads]
            raise RuntimeError(f"level {level} bucket {bucket}: no coarse splats came back for groups {missing}")
        return files

    def close(self) -> None:
        """The packing stopped (queued buckets cancelled, a running one finished) and this
        process's own limits given back."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.device is not None and self.device.type == "cuda":
            cap_gpu_memory(str(self.device), 0, uncap=True)
        elif self.threads is not None:
            torch.set_num_threads(self.threads)
