"""Seconds of one decimation step (halving: pairing passes and the moment-matching merge) at a
few sizes, as JSON: the streamed writer runs it three times per chunk group.

    python bench/decimate_bench.py [--sizes 250000 1000000] [--device auto] [--json out.json]
           [--module path/to/other_decimate.py]   # time another version beside this one
    python bench/decimate_bench.py --groups 1 4 8 [--group-size 540000 --leaves 64 --levels 4]
           [--profile]

Synthetic SH3 splats split into two leaves (pairs never cross a leaf). Best of 3, synchronised.
--groups: a streamed SOG's `build_levels` (every coarser level of one chunk group) on G groups'
splats at once (G x leaves segments), seconds per group: what batching the groups' decimation
into one call would gain (issue 32); --profile prints torch's profile of one group's levels.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from results_io import write_result  # noqa: E402  (bench/ is the script's own folder)

import torch  # noqa: E402

from sogs_core.model.device import device_label, resolve_device  # noqa: E402
from sogs_core.edit import decimate as ours  # noqa: E402
from sogs_core.pipeline.streamed.chunk import splats_tensors  # noqa: E402
from sogs_core.model.synth import synthetic_scene  # noqa: E402


def load(path: str):
    spec = importlib.util.spec_from_file_location("sogs_core.edit._other_decimate", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def best_of(fn, dev: torch.device, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        a = time.perf_counter()
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        best = min(best, time.perf_counter() - a)
    return best


def groups_rows(a, dev: torch.device) -> None:
    """`build_levels` on 1, G, ... chunk groups' splats at once: seconds in all and per group."""
    from sogs_core.pipeline.streamed.chunk import build_levels

    rows = []
    for g in a.groups:
        n = a.group_size * g
        splats = synthetic_scene(n, 3, seed=1)
        sizes = [n // (g * a.leaves)] * (g * a.leaves)
        sizes[-1] += n - sum(sizes)
        build_levels(splats, sizes, a.levels, dev)                      # warm-up
        sec = best_of(lambda: build_levels(splats, sizes, a.levels, dev), dev, repeat=2)
        rows.append({"groups": g, "splats": n, "leaves": len(sizes), "levels": a.levels, "seconds": sec,
                     "seconds_per_group": sec / g})
        print(f"groups {g:>3} ({n:,} splats, {len(sizes)} leaves): build_levels {sec:.3f} s, "
              f"{sec / g:.3f} s per group", flush=True)
    if a.profile:
        from torch.profiler import ProfilerActivity, profile

        splats = synthetic_scene(a.group_size, 3, seed=1)
        sizes = [a.group_size // a.leaves] * a.leaves
        sizes[-1] += a.group_size - sum(sizes)
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
        with profile(activities=acts) as prof:
            build_levels(splats, sizes, a.levels, dev)
        key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
        print(prof.key_averages().table(sort_by=key, row_limit=14))
    write_result({"device": device_label(dev), "host": platform.node(), "rows": rows}, a.json,
                 "decimate_groups.json")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[250_000, 1_000_000])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--module", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--groups", type=int, nargs="+", default=None)
    ap.add_argument("--group-size", type=int, default=540_000)
    ap.add_argument("--leaves", type=int, default=64)
    ap.add_argument("--levels", type=int, default=4)
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    dev = resolve_device(a.device)
    if a.groups:
        groups_rows(a, dev)
        return
    versions = {"this": ours} | ({"other": load(a.module)} if a.module else {})
    rows = []
    for n in a.sizes:
        t = splats_tensors(synthetic_scene(n, 3, seed=1), dev)
        seg = torch.repeat_interleave(torch.arange(2, device=dev), torch.tensor([n // 2, n - n // 2], device=dev))
        for label, mod in versions.items():
            with torch.no_grad():
                out, _ = mod.decimate(t, seg)
                row = {"n": n, "version": label, "kept": len(out["means"]),
                       "decimate": best_of(lambda: mod.decimate(t, seg), dev)}
            rows.append(row)
            print(f"n={n:>9} {label:<6} decimate {row['decimate']:.4f} s, {row['kept']} kept", flush=True)
    write_result({"device": device_label(dev), "host": platform.node(), "rows": rows}, a.json, "decimate_bench.json")


if __name__ == "__main__":
    main()
