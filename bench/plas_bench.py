"""PLAS on the shared benchmark grid: seconds and neighbour distance, written as JSON.

    python bench/plas_bench.py --sides 512 1024 [--device auto] [--json out.json]
    python bench/plas_bench.py --sides 1024 --sweep     # also try schedule variants

Needs ../shared/bench/plas_grid.py (beside the checkout), as the reference figures used it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
for cand in (os.path.join(HERE, "..", "..", "shared", "bench"), os.path.join(HERE, "..", "shared", "bench")):
    if os.path.isfile(os.path.join(cand, "plas_grid.py")):
        sys.path.insert(0, cand)

import torch  # noqa: E402
from plas_grid import gs_grid, neighbor_distance  # noqa: E402

from sogs_core.device import device_label, resolve_device  # noqa: E402
from sogs_core.plas_sort import PlasConfig, plas_sort  # noqa: E402

VARIANTS = {
    "default": PlasConfig(),
    "tent": PlasConfig(blur_passes=2),
    "gauss3": PlasConfig(blur_passes=3),
    "iters8": PlasConfig(max_iters_per_level=8),
    "iters16_tent": PlasConfig(max_iters_per_level=16, blur_passes=2),
    "block8": PlasConfig(min_block_size=8),
    "block4": PlasConfig(min_block_size=4),
    "block8_iters16": PlasConfig(min_block_size=8, max_iters_per_level=16),
    "decay0.9_tent_break1e-5": PlasConfig(radius_decay=0.9, blur_passes=2, improvement_break=1e-5),
}


def run(side: int, dev: torch.device, cfg: PlasConfig) -> dict:
    grid = gs_grid(side).to(dev)
    feats = grid.reshape(-1, grid.shape[-1])
    before = neighbor_distance(grid)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    order = plas_sort(feats, (side, side), seed=0, config=cfg)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    after = neighbor_distance(feats[order].reshape(side, side, -1))
    ok = bool((torch.sort(order).values == torch.arange(side * side, device=dev)).all())
    return {"side": side, "seconds": secs, "nd_before": before, "nd_after": after, "permutation": ok}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sides", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "plas.json"))
    a = ap.parse_args()
    dev = resolve_device(a.device)
    run(64, dev, PlasConfig())  # warm-up
    rows = []
    variants = VARIANTS if a.sweep else {"default": PlasConfig()}
    print(f"{'variant':<22}{'side':>6}{'seconds':>10}{'nd before':>11}{'nd after':>10}")
    for side in a.sides:
        for name, cfg in variants.items():
            r = run(side, dev, cfg)
            r["variant"] = name
            r["config"] = cfg.__dict__
            rows.append(r)
            print(f"{name:<22}{side:>6}{r['seconds']:>10.3f}{r['nd_before']:>11.3f}{r['nd_after']:>10.3f}", flush=True)
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump({"device": device_label(dev), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
