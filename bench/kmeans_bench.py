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
from synth_scene import synth_scene  # noqa: E402

from sogs_core.quantize.palette import kmeans as palette  # noqa: E402
from sogs_core.model.device import device_label, resolve_device  # noqa: E402


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1 << 20)
    ap.add_argument("--k", type=int, default=65536)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--methods", nargs="+", default=["triton", "triton-ieee", "torch"])
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "kmeans.json"))
    a = ap.parse_args()
    dev = resolve_device(a.device)
    x = torch.from_numpy(synth_scene(a.n, seed=7, sh_degree=3)["f_rest"]).float().to(dev)
    rows = []
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
