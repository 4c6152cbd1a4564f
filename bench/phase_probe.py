"""When each part of a streamed write happens (issue 32's 20 s target): `streamed_bench.py` run
with its processes' and this process's steps stamped, one line each on stderr
(`PROBE <seconds since the writer started> <who> <what>`), then a summary of the head (start
to each run's first group) and the tail (last group to the index written).

    python bench/phase_probe.py --millions 32 --sh 3 --quality 80 --processes auto [streamed_bench options]
    SOGS_PROBE_HERE_WEIGHT=1.5 python bench/phase_probe.py ...   # the calling process's run 1.5x the others'
    SOGS_PROBE_PRELOAD=probe_server_warm python bench/phase_probe.py ...   # the process server warms Triton too

Measurement only: it wraps the library's functions from outside, nothing in sogs_core changes.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

T0_ENV = "SOGS_PROBE_T0"


def stamp(who: str, what: str) -> None:
    # the writer's start, from the file it wrote it to (a process forked by a server started
    # before it has the server's environment, not the writer's)
    try:
        with open(os.environ[T0_ENV]) as f:
            t0 = float(f.read() or 0)
    except (KeyError, OSError, ValueError):
        t0 = 0.0
    print(f"PROBE {time.time() - t0:8.3f} {who} {what}", file=sys.stderr, flush=True)


class _Stamped:
    """A queue whose get/put are stamped (a writing process's inbox and outbox)."""

    def __init__(self, q, who: str) -> None:
        self.q, self.who = q, who

    def get(self, *a, **k):
        stamp(self.who, "ready, waits for its job")
        item = self.q.get(*a, **k)
        stamp(self.who, "job received" if item is not None else "let go")
        return item

    def put(self, item, *a, **k):
        stamp(self.who, f"put {item[0]} {item[1] if item[0] == 'groups' else ''}")
        return self.q.put(item, *a, **k)


def probe_run_part(part, device, settings, inputs, threads, gpu_mib, inbox, out, *rest):
    """`processes._run_part` with its steps stamped (runs in the spawned process)."""
    from sogs_core.pipeline.streamed import processes

    who = f"proc{part}"
    stamp(who, "entered (spawned, modules imported)")
    processes._run_part(part, device, settings, inputs, threads, gpu_mib, _Stamped(inbox, who), _Stamped(out, who),
                        *rest)
    stamp(who, "returned")


HERE_WEIGHT_ENV = "SOGS_PROBE_HERE_WEIGHT"
#: more modules for the process server to import before it forks (e.g. probe_server_warm)
PRELOAD_ENV = "SOGS_PROBE_PRELOAD"


def weighted_split(groups, parts: int, weight: float):
    """`processes.split_groups` with the first run (the calling process's, whose compressor is
    warm while the others start) `weight` times the others' share of level-0 splats: what a
    head start for it would gain (set SOGS_PROBE_HERE_WEIGHT; the files are the same)."""
    from sogs_core.pipeline.streamed.processes import split_groups

    if parts < 2 or len(groups) < parts:
        return split_groups(groups, parts)
    total = sum(g.splats for g in groups)
    target = total * weight / (weight + parts - 1)
    taken, k = 0, 0
    while k < len(groups) - (parts - 1) and taken + groups[k].splats / 2 <= target:
        taken += groups[k].splats
        k += 1
    return [groups[:max(1, k)]] + split_groups(groups[max(1, k):], parts - 1)


def install() -> None:
    """Wrap the parent's steps and make the writing processes run `probe_run_part`."""
    from sogs_core.pipeline.streamed import processes, write

    def wrap(mod, name, label):
        orig = getattr(mod, name)

        def inner(*a, **k):
            stamp("main", f"{label} begins")
            try:
                return orig(*a, **k)
            finally:
                stamp("main", f"{label} ends")
        setattr(mod, name, inner)

    processes._run_part = probe_run_part
    weight = float(os.environ.get(HERE_WEIGHT_ENV, "0") or 0)
    if weight > 0:
        write.split_groups = lambda groups, parts: weighted_split(groups, parts, weight)
    wrap(write, "plan_streamed", "plan")
    wrap(write, "write_lod_meta", "lod-meta written")
    wrap(processes.SharedBuckets, "finish", "shared buckets finish")
    wrap(processes.WritingProcesses, "close", "processes close")
    wrap(processes.WritingProcesses, "__init__", "processes start")
    if hasattr(processes, "PrivateMps"):
        wrap(processes.PrivateMps, "stop", "mps stop")
    orig_here = processes.run_and_report

    def here(compressor, sources, job, part, put, stop=None):
        def put_stamped(item):
            stamp("here", f"put {item[0]} {item[1] if item[0] == 'groups' else ''}")
            put(item)
        stamp("here", "job begins")
        return orig_here(compressor, sources, job, part, put_stamped, stop)
    processes.run_and_report = here
    orig_ws = write.write_streamed

    def ws(*a, **k):
        with open(os.environ[T0_ENV], "w") as f:
            f.write(repr(time.time()))
        stamp("main", "write_streamed begins")
        try:
            return orig_ws(*a, **k)
        finally:
            stamp("main", "write_streamed ends")
    import sogs_core.pipeline.streamed as pkg
    pkg.write_streamed = ws


if __name__ == "__main__":
    os.environ[T0_ENV] = os.path.join(tempfile.gettempdir(), f"sogs_probe_t0_{os.getpid()}")
    install()
    if os.environ.get(PRELOAD_ENV):
        from sogs_core.pipeline import process_server

        process_server.PRELOAD = process_server.PRELOAD + tuple(os.environ[PRELOAD_ENV].split(","))
    import streamed_bench
    import sogs_core.pipeline.streamed as pkg
    streamed_bench.write_streamed = pkg.write_streamed
    try:
        streamed_bench.main()
    finally:
        if os.path.exists(os.environ[T0_ENV]):
            os.remove(os.environ[T0_ENV])
