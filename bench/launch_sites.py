"""Torch ops per call site in one warm `compress`: on a GPU roughly its kernel launches, which
bound a streamed SOG's files more than the work they do (bench/NOTES.md, session 30).

    python bench/launch_sites.py [scene.ply | --synthetic N] [--sh 3] [--quality 80] [--device auto]
        [--top 40] [--json out.json]

Every thread's ops and launches are profiled (torch.profiler with Python stacks); each is counted
once for every library function on its stack (so a stage's count includes its helpers') and
once for the innermost one. On a CPU only ops are counted (there are no launches).
"""
from __future__ import annotations

import argparse
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from results_io import write_result  # noqa: E402  (bench/ is the script's own folder)

from torch.profiler import ProfilerActivity, profile  # noqa: E402

from sogs_core.formats.ply.write import ply_bytes  # noqa: E402
from sogs_core.model.synth import synthetic_scene  # noqa: E402
from sogs_core.pipeline.compressor import Compressor  # noqa: E402
from sogs_core.settings import CompressSettings  # noqa: E402

LAUNCHES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx")


def library_sites(evt) -> list[str]:
    """The library's functions above a profiler event, innermost first: the profiler records
    each Python call as an event named "path(line): function", parent of what it ran."""
    out = []
    evt = evt.cpu_parent
    while evt is not None:
        path, sep, func = evt.name.partition(": ")
        if sep and "sogs_core/" in path:
            out.append("sogs_core/" + path.split("sogs_core/", 1)[1].split("(")[0] + ":" + func)
        evt = evt.cpu_parent
    return out


def count_sites(events) -> tuple[collections.Counter, collections.Counter, int, int]:
    """(counts within each library function, counts by innermost one, ops, kernel launches) of
    a profile, keyed ("op" | "launch", function): an op is an aten event not inside another aten
    event; a launch is a CUDA runtime launch (torch's kernels and Triton's alike)."""
    within: collections.Counter = collections.Counter()
    innermost: collections.Counter = collections.Counter()
    ops = launches = 0
    for evt in events:
        if evt.name.startswith("aten::"):
            parent = evt.cpu_parent
            if parent is not None and parent.name.startswith("aten::"):
                continue
            ops, key = ops + 1, "op"
        elif evt.name in LAUNCHES:
            launches, key = launches + 1, "launch"
        else:
            continue
        sites = library_sites(evt)
        innermost[(key, sites[0] if sites else "(outside the library)")] += 1
        for site in set(sites):
            within[(key, site)] += 1
    return within, innermost, ops, launches


def all_threads():
    """The profiler's option to record the ops of every thread (torch 2.6 on), not only the
    thread that starts it and its children: without it a GPU run counted the launches of the
    palette's and the encoders' threads but none of their ops, so no site (session 33)."""
    try:
        from torch._C._profiler import _ExperimentalConfig

        return _ExperimentalConfig(profile_all_threads=True)
    except (ImportError, TypeError):
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ply", nargs="?")
    ap.add_argument("--synthetic", type=int, default=200_000, help="splats of a synthetic scene (no PLY given)")
    ap.add_argument("--sh", type=int, default=3)
    ap.add_argument("--quality", type=int, default=80)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    data = a.ply or ply_bytes(synthetic_scene(a.synthetic, a.sh))
    comp = Compressor(device=a.device, settings=CompressSettings(quality=a.quality))
    comp.compress(data, with_fidelity=False)                      # warm: kernels compiled, pools made
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if comp.device.type == "cuda" else [])
    with profile(activities=activities, with_stack=True, experimental_config=all_threads()) as prof:
        res = comp.compress(data, with_fidelity=False)
    comp.close()
    within, innermost, ops, launches = count_sites(prof.events())
    print(f"{res.count} splats on {comp.device_name}: {ops} torch ops, {launches} kernel launches (every thread)")
    shown = "launch" if launches else "op"
    for (_, site), n in sorted(((k, n) for k, n in within.items() if k[0] == shown), key=lambda kv: -kv[1])[:a.top]:
        print(f"{n:8d}  {site}")
    write_result({"input": a.ply or f"synthetic {a.synthetic} SH{a.sh}", "count": res.count, "quality": a.quality,
                  "device": comp.device_name, "ops": ops, "launches": launches,
                  "within": {f"{k} {s}": n for (k, s), n in within.items()},
                  "innermost": {f"{k} {s}": n for (k, s), n in innermost.items()}}, a.json, "launch_sites.json")


if __name__ == "__main__":
    main()
