"""Where a streamed SOG write's GPU time goes: one process (`processes=1`) writing a synthetic
scene under torch's profiler: the device time of the busiest kernels (every thread's: the
device records them all), how much of the wall a kernel ran at all, and the device time of the
pipeline steps the calling thread runs (named ranges around the library's functions; torch's
profiler sees no other thread's ranges, so a streamed write's steps, run on unit threads, show
only with `--single`, whose stages run on the calling thread).

    python bench/streamed_kernels.py --millions 4 --sh 3 [--single] [--json out.json]

Why: the streamed write's stage seconds include waits for the GPU lock and for each other, so
they cannot say whether the GPU is the bound, nor which step's kernels would pay to cut.
`--single` profiles one SOG of the same scene (`Compressor.compress`) for comparison. A first,
unprofiled run compiles the kernels and gives the plain wall; the profiled run comes second.
"""
from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from results_io import write_result  # noqa: E402  (bench/ is the script's own folder)
from streamed_bench import write_big_ply  # noqa: E402

import torch  # noqa: E402

from sogs_core.pipeline import compressor as comp_mod  # noqa: E402
from sogs_core.pipeline import palette_aside as aside_mod  # noqa: E402
from sogs_core.pipeline.compressor import Compressor  # noqa: E402
from sogs_core.pipeline.streamed import chunk as chunk_mod, units as units_mod, write_streamed  # noqa: E402
from sogs_core.settings import ChunkOptions, CompressSettings, StreamedSettings  # noqa: E402

#: (module, name looked up there) wrapped in a named range: the steps of a streamed group
STEPS = [
    (units_mod, "build_levels_batch"), (chunk_mod, "decimate"), (chunk_mod, "tensors_splats"),
    (chunk_mod, "_box_extent"), (comp_mod, "quantize_splats"), (comp_mod, "order_scene"),
    (comp_mod, "apply_order"), (comp_mod, "build_images"), (comp_mod, "number_palette"),
    (comp_mod, "with_palette"), (comp_mod, "dequantize_tensors"), (comp_mod, "fidelity_tensors"),
    (comp_mod, "splat_importance"), (comp_mod, "visible_rows_in_runs"), (comp_mod, "visible_rows"),
    (comp_mod, "smallest_by_sample"), (comp_mod, "encode_webp"), (comp_mod, "respell_near_identity"),
    (aside_mod, "fit_palette"), (comp_mod, "read_scene"),
]


def named(fn, label: str):
    """`fn` inside a profiler range called `label`."""
    @functools.wraps(fn)
    def wrapper(*a, **k):
        with torch.profiler.record_function(label):
            return fn(*a, **k)
    return wrapper


def wrap_steps() -> None:
    for mod, name in STEPS:
        setattr(mod, name, named(getattr(mod, name), "step:" + name))
    Compressor._to_device = named(Compressor._to_device, "step:_to_device")


def device_time(evt) -> float:
    """A profiler row's device time in microseconds (the attribute's name moved across torch versions)."""
    for attr in ("device_time_total", "cuda_time_total"):
        if hasattr(evt, attr):
            return float(getattr(evt, attr))
    return 0.0


def self_device_time(evt) -> float:
    for attr in ("self_device_time_total", "self_cuda_time_total"):
        if hasattr(evt, attr):
            return float(getattr(evt, attr))
    return 0.0


def kernel_intervals(prof) -> list[tuple[float, float]]:
    """(start, end) in microseconds of every kernel and copy on the device."""
    out = []
    for e in prof.events():
        if str(getattr(e, "device_type", "")).endswith("CUDA"):
            out.append((e.time_range.start, e.time_range.end))
    return out


def union_seconds(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, -1e300
    for s, e in sorted(spans):
        if e <= end:
            continue
        total += e - max(s, end)
        end = e
    return total / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--millions", type=float, default=4)
    ap.add_argument("--sh", type=int, default=3)
    ap.add_argument("--quality", type=int, default=80)
    ap.add_argument("--levels", type=int, default=4)
    ap.add_argument("--single", action="store_true", help="one SOG of the scene instead of a streamed one")
    ap.add_argument("--top", type=int, default=35, help="kernels listed")
    ap.add_argument("--work", default="/tmp/streamed_kernels")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    n = int(a.millions * 1_000_000)
    os.makedirs(a.work, exist_ok=True)
    ply = os.path.join(a.work, f"synth_{n}_sh{a.sh}.ply")
    if not os.path.exists(ply):
        write_big_ply(ply, n, a.sh)
    comp = Compressor(device="auto", settings=CompressSettings(quality=a.quality))

    def once() -> float:
        t0 = time.perf_counter()
        if a.single:
            comp.compress(ply, os.path.join(a.work, "single.sog"))
        else:
            write_streamed(comp, [ply], os.path.join(a.work, "out", "lod-meta.json"),
                           StreamedSettings(levels=a.levels, chunks=ChunkOptions()), processes=1)
        if comp.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    plain = [once(), once()]
    print(f"plain wall {plain[0]:.2f} / {plain[1]:.2f} s", flush=True)
    wrap_steps()
    acts = [torch.profiler.ProfilerActivity.CPU]
    if comp.device.type == "cuda":
        acts.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=acts) as prof:
        wall = once()
    spans = kernel_intervals(prof)
    busy = union_seconds(spans)
    rows = prof.key_averages()
    steps = sorted((r for r in rows if r.key.startswith("step:")), key=device_time, reverse=True)
    kernels = sorted((r for r in rows if self_device_time(r) > 0 and not r.key.startswith("step:")),
                     key=self_device_time, reverse=True)
    kernel_sum = sum(self_device_time(r) for r in kernels) / 1e6
    print(f"profiled wall {wall:.2f} s; device busy (a kernel or copy running) {busy:.2f} s; "
          f"kernel time summed {kernel_sum:.2f} s; {len(spans)} device events", flush=True)
    if steps:
        print("step: device s (incl. inner steps), cpu s, calls")
    for r in steps:
        print(f"  {r.key[5:]:28s} {device_time(r) / 1e6:8.3f} {r.cpu_time_total / 1e6:8.3f} {r.count:7d}")
    print("kernels: self device s, calls, name")
    for r in kernels[:a.top]:
        print(f"  {self_device_time(r) / 1e6:8.3f} {r.count:7d}  {r.key[:110]}")
    result = {"splats": n, "sh": a.sh, "quality": a.quality, "single": a.single, "device": comp.device_name,
              "host": platform.node(), "seconds_plain": plain, "seconds_profiled": wall,
              "device_busy_seconds": busy, "kernel_seconds_summed": kernel_sum, "device_events": len(spans),
              "steps": [{"step": r.key[5:], "device_s": device_time(r) / 1e6, "cpu_s": r.cpu_time_total / 1e6,
                         "calls": r.count} for r in steps],
              "kernels": [{"name": r.key, "device_s": self_device_time(r) / 1e6, "calls": r.count}
                          for r in kernels[:200]]}
    write_result(result, a.json, f"streamed_kernels_{a.millions:g}M_sh{a.sh}{'_single' if a.single else ''}.json")
    comp.close()


if __name__ == "__main__":
    main()
