"""SH palette k-means (65536 x 45 over 1M splats by default): seconds and inertia per method.

    python bench/kmeans_bench.py [--n 1048576] [--k 65536] [--iters 10] [--sweep] [--json out.json]

Data: the f_rest (45 SH coefficients) of ../shared/bench/synth_scene.py --n N --sh 3 --seed 7,
the input the compressor clusters. Methods: torch (batched float32 matmul + min), triton (fused
tf32 search), triton-ieee (fused float32). Same seed, same init, same iterations, so the inertia
columns compare like with like. --sweep also times the fused search's tile shapes.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
for cand in (os.path.join(HERE, "..", "..", "shared", "bench"), os.path.join(HERE, "..", "shared", "bench"),
             os.path.join(HERE, "..", "shared_carry", "bench")):      # shared_carry: a copy carried to the GPU machine
    if os.path.isfile(os.path.join(cand, "synth_scene.py")):
        sys.path.insert(0, cand)

import torch  # noqa: E402

from sogs_core.quantize.palette import kmeans as palette  # noqa: E402
from sogs_core.model.device import device_label, resolve_device  # noqa: E402


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def sh_rows(n: int):
    """f_rest of n splats: ../shared/bench/synth_scene.py's where it is at hand (the figures in
    bench/NOTES.md), else the library's own synthetic scene (a device machine without ../shared)."""
    try:
        from synth_scene import synth_scene
    except ImportError:
        from sogs_core.model.synth import synthetic_scene

        return synthetic_scene(n, 3, seed=7).f_rest.reshape(n, -1)
    return synth_scene(n, seed=7, sh_degree=3)["f_rest"]


def time_fit(x: torch.Tensor, a: argparse.Namespace, dev: torch.device) -> dict:
    """fit_palette with the compressor's weights, best of three, and (--profile) where its time goes."""
    from sogs_core.quantize.palette.fit import fit_palette

    gen = torch.Generator(device="cpu").manual_seed(3)
    weights = torch.rand(len(x), generator=gen).to(dev) ** 4          # heavy-tailed, as importance is
    fit_palette(x[:20000], 2, size=256, weights=weights[:20000])     # compile / warm up
    times = []
    for _ in range(3):
        sync(dev)
        t0 = time.perf_counter()
        pal = fit_palette(x, a.iters, size=a.k, weights=weights)
        sync(dev)
        times.append(time.perf_counter() - t0)
    print(f"fit_palette n {len(x):,} k {a.k:,} iterations {a.iters}: {min(times):.3f} s best of 3 "
          f"(k-means {pal.seconds:.3f} s), inertia {pal.inertia:.6e}", flush=True)
    row = {"method": "fit_palette", "seconds": min(times), "inertia": pal.inertia}
    if a.profile:
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
        with profile(activities=acts) as prof:
            fit_palette(x, a.iters, size=a.k, weights=weights)
            sync(dev)
        events = prof.key_averages()
        host = sum(e.self_cpu_time_total for e in events) / 1e6
        device = sum(getattr(e, "self_device_time_total", 0) for e in events) / 1e6
        launches = sum(e.count for e in events if e.key.startswith(("cudaLaunchKernel", "cuLaunchKernel")))
        print(f"profile: host {host:.3f} s, device {device:.3f} s, kernel launches {launches}")
        for key in ("self_device_time_total", "self_cpu_time_total"):
            print(f"top by {key}: name, calls, self host ms, self device ms")
            for e in sorted(events, key=lambda e: getattr(e, key, 0), reverse=True)[:14]:
                print(f"  {e.key[:48]:<48} {e.count:>6} {e.self_cpu_time_total / 1e3:>8.1f} "
                      f"{getattr(e, 'self_device_time_total', 0) / 1e3:>8.1f}")
        row.update({"profile_host_seconds": host, "profile_device_seconds": device, "kernel_launches": launches})
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1 << 20)
    ap.add_argument("--k", type=int, default=65536)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--methods", nargs="+", default=["triton", "triton-ieee", "torch"])
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--fit", action="store_true",
                    help="time fit_palette as the compressor calls it (importance weights, the centroids' codebook) "
                         "instead of the bare k-means methods")
    ap.add_argument("--profile", action="store_true",
                    help="profile one more run (torch profiler): host against device time, the top operators")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "kmeans.json"))
    a = ap.parse_args()
    dev = resolve_device(a.device)
    x = torch.from_numpy(sh_rows(a.n)).float().to(dev)
    rows = []
    if a.fit:
        rows.append(time_fit(x, a, dev))
        os.makedirs(os.path.dirname(a.json), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump({"device": device_label(dev), "n": a.n, "k": a.k, "iters": a.iters, "rows": rows}, f, indent=2)
        return
    print(f"{'method':<14}{'seconds':>9}{'inertia':>16}")
    for method in a.methods:
        palette.kmeans(x[:20000], 256, iterations=1, method=method)        # compile / warm up
        sync(dev)
        t0 = time.perf_counter()
        _, _, inertia = palette.kmeans(x, a.k, iterations=a.iters, seed=0, method=method)
        sync(dev)
        secs = time.perf_counter() - t0
        rows.append({"method": method, "seconds": secs, "inertia": inertia})
        print(f"{method:<14}{secs:>9.3f}{inertia:>16.6e}", flush=True)
    sweep = []
    if a.sweep and dev.type == "cuda":
        from sogs_core.quantize.palette import triton_search as pt
        mean = x.mean(0)
        xp = pt.pad_rows(x - mean, pt.padded_width(x.shape[1]))
        cents = x[torch.randperm(len(x), device=dev)[:a.k]].contiguous()
        for bm, bn, warps, stages in ((128, 128, 8, 3), (128, 64, 4, 3), (64, 128, 4, 3), (128, 256, 8, 3),
                                      (256, 128, 8, 3), (128, 128, 4, 4)):
            try:
                pt.nearest(xp, x, cents, mean, block_m=bm, block_n=bn, num_warps=warps, num_stages=stages)
                sync(dev)
                t0 = time.perf_counter()
                for _ in range(3):
                    pt.nearest(xp, x, cents, mean, block_m=bm, block_n=bn, num_warps=warps, num_stages=stages)
                sync(dev)
                secs = (time.perf_counter() - t0) / 3
            except Exception as exc:  # a tile shape the GPU cannot hold
                secs = float("nan")
                print(f"  tile {bm}x{bn} w{warps} s{stages}: {type(exc).__name__}")
            flops = 2 * len(x) * a.k * xp.shape[1]
            sweep.append({"block_m": bm, "block_n": bn, "warps": warps, "stages": stages, "seconds": secs,
                          "tflops": flops / secs / 1e12})
            print(f"  search tile {bm}x{bn} warps {warps} stages {stages}: {secs * 1e3:.1f} ms "
                  f"({flops / secs / 1e12:.0f} TFLOP/s)", flush=True)
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump({"device": device_label(dev), "n": a.n, "k": a.k, "iters": a.iters, "rows": rows,
                   "sweep": sweep}, f, indent=2)


if __name__ == "__main__":
    main()
