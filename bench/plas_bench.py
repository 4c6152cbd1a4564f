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

from sogs_core.model.device import device_label, resolve_device  # noqa: E402
from sogs_core.order.plas import plas_sort  # noqa: E402
from sogs_core.settings import PlasConfig  # noqa: E402

# A variant sets only the fields it names; the rest take today's PlasConfig defaults, so a variant
# measured in an earlier session (bench/NOTES.md gives that day's defaults) may differ today.
VARIANTS = {
    "default": PlasConfig(),
    "reference": PlasConfig.reference(),
    "fp32": PlasConfig(store_fp16=False),
    "block4": PlasConfig(min_block_size=4),
    "block4_fp16": PlasConfig(min_block_size=4, store_fp16=True),
    "break1e-5": PlasConfig(improvement_break=1e-5),
    "configs2": PlasConfig(min_configs=2),
    "b4_fine1e-5_r8": PlasConfig(min_block_size=4, fine_radius=8, fine_break=1e-5),
    "b4_fp16_fine1e-5_r8": PlasConfig(min_block_size=4, store_fp16=True, fine_radius=8, fine_break=1e-5),
    "b4_fp16_3band": PlasConfig(min_block_size=4, store_fp16=True, fine_radius=8, fine_break=1e-5,
                                mid_radius=32, mid_break=3e-5),
    "b4_fp16_3band_cdecay0.9": PlasConfig(min_block_size=4, store_fp16=True, fine_radius=8, fine_break=1e-5,
                                          mid_radius=32, mid_break=3e-5, coarse_radius=32, coarse_decay=0.9),
    "b4_fp16_3band_cdecay0.85": PlasConfig(min_block_size=4, store_fp16=True, fine_radius=8, fine_break=1e-5,
                                           mid_radius=32, mid_break=3e-5, coarse_radius=32, coarse_decay=0.85),
    "b4_fp16_3band_configs3": PlasConfig(min_block_size=4, store_fp16=True, fine_radius=8, fine_break=1e-5,
                                         mid_radius=32, mid_break=3e-5, min_configs=3),
    "b4_fp16_fine5e-6_r8_cdecay0.9": PlasConfig(min_block_size=4, store_fp16=True, fine_radius=8,
                                                fine_break=5e-6, mid_radius=32, mid_break=3e-5,
                                                coarse_radius=32, coarse_decay=0.9),
    "b4_fp16_fine3e-6_r8_cdecay0.9": PlasConfig(min_block_size=4, store_fp16=True, fine_radius=8,
                                                fine_break=3e-6, mid_radius=32, mid_break=3e-5,
                                                coarse_radius=32, coarse_decay=0.9),
    "b4_fp16_fine5e-6_mid2e-5_cdecay0.9": PlasConfig(min_block_size=4, store_fp16=True, fine_radius=8,
                                                     fine_break=5e-6, mid_radius=32, mid_break=2e-5,
                                                     coarse_radius=32, coarse_decay=0.9),
    "fine3e-6": PlasConfig(fine_break=3e-6),
    "fine2e-6": PlasConfig(fine_break=2e-6),
    "fine3e-6_mid2e-5": PlasConfig(fine_break=3e-6, mid_break=2e-5),
    "fine2e-6_mid2e-5": PlasConfig(fine_break=2e-6, mid_break=2e-5),
    "fine3e-6_r12": PlasConfig(fine_break=3e-6, fine_radius=12),
    "bf0.75": PlasConfig(block_factor=0.75),
    "bf0.5": PlasConfig(block_factor=0.5),
    "cap128": PlasConfig(max_block_size=128),
    "cap64": PlasConfig(max_block_size=64),
    "bf0.5_fine2e-6": PlasConfig(block_factor=0.5, fine_break=2e-6),
    "random_init": PlasConfig(init="random"),
    "fine2e-6_cdecay0.85": PlasConfig(fine_break=2e-6, coarse_decay=0.85),
    "fine2e-6_coarse2e-4": PlasConfig(fine_break=2e-6, improvement_break=2e-4),
    "fine1.5e-6_coarse2e-4": PlasConfig(fine_break=1.5e-6, improvement_break=2e-4),
    "fine2e-6_mid4e-5": PlasConfig(fine_break=2e-6, mid_break=4e-5),
    "pca_r64": PlasConfig(start_radius=64),
}


def run(side: int, dev: torch.device, cfg: PlasConfig, seed: int = 0) -> dict:
    grid = gs_grid(side).to(dev)
    feats = grid.reshape(-1, grid.shape[-1])
    before = neighbor_distance(grid)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    stats: dict = {}
    order = plas_sort(feats, (side, side), seed=seed, config=cfg, stats=stats)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    after = neighbor_distance(feats[order].reshape(side, side, -1))
    ok = bool((torch.sort(order).values == torch.arange(side * side, device=dev)).all())
    return {"side": side, "seed": seed, "seconds": secs, "nd_before": before, "nd_after": after, "permutation": ok, **stats}


def micro(side: int, dev: torch.device, dtype: torch.dtype = torch.float32) -> dict:
    """GPU and host microseconds of one group step per block side, and of one target."""
    from sogs_core.order.plas import _backend
    feats = gs_grid(side).reshape(-1, 13).to(dev)
    n, cp, mask_ch = side * side, 16, 13
    grid = torch.zeros(n, cp, device=dev, dtype=dtype)
    grid[:, :13] = feats.to(dtype)
    grid[:, mask_ch] = 1
    order = torch.arange(n, dtype=torch.int32, device=dev)
    be = _backend("auto", side, side, n, cp, mask_ch, dev, dtype)
    target = torch.empty_like(grid)
    sums = torch.zeros(2, dtype=torch.float64, device=dev)
    out = {"backend": be.name, "dtype": str(dtype), "step_us": {}, "host_us": {}}
    be.target(grid, 8, target)
    reps = 200
    for block in (4, 16, 64, 256, side):
        be.step(grid, order, target, block, 1, 2, (1, 2, 3, 4), sums)
        torch.cuda.synchronize()
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter()
        e0.record()
        for i in range(reps):
            be.step(grid, order, target, block, i % block, (3 * i) % block, (i, 2 * i + 1, 7, i ^ 5), sums)
        e1.record()
        host = (time.perf_counter() - t0) / reps * 1e6
        torch.cuda.synchronize()
        out["step_us"][block] = e0.elapsed_time(e1) / reps * 1e3
        out["host_us"][block] = host
    if getattr(be, "persistent", False):
        # one config of `reps` steps as one cooperative launch (a break no gain can miss), target
        # included: ~0.2 ms over 200 steps, ~1 us a step of the figure
        out["persistent_step_us"], out["persistent_blocks"] = {}, be._coop_blocks
        steps_out = torch.zeros(1, dtype=torch.int32, device=dev)
        for block in (4, 16, 64, 256):
            be.run_level(grid, order, target, 8, block, [(1, 2, (1, 2, 3, 4))], -1.0, 1, reps, steps_out)
            torch.cuda.synchronize()
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            be.run_level(grid, order, target, 8, block, [(3, 1, (5, 6, 7, 8))], -1.0, 1, reps, steps_out)
            e1.record()
            torch.cuda.synchronize()
            assert int(steps_out[0]) == reps, steps_out
            out["persistent_step_us"][block] = e0.elapsed_time(e1) / reps * 1e3
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for r in range(1, 51):
        be.target(grid, r, target)
    e1.record()
    torch.cuda.synchronize()
    out["target_us"] = e0.elapsed_time(e1) / 50 * 1e3
    print(f"micro {side}: " + json.dumps(out), flush=True)
    return out


def print_bands(per_level: list) -> None:
    """Levels, configs, steps and seconds per radius band."""
    bands: dict = {}
    for rad, _block, cfgs, steps, secs in per_level:
        key = "r>=32" if rad >= 32 else "r8-31" if rad >= 8 else "r2-7" if rad >= 2 else "r1"
        b = bands.setdefault(key, [0, 0, 0, 0.0])
        b[0] += 1
        b[1] += cfgs
        b[2] += steps
        b[3] += secs
    print("    " + "  ".join(f"{k}: {v[0]} lv {v[1]} cfg {v[2]} steps {v[3]:.3f}s" for k, v in bands.items()))


def run_variant(name: str, cfg: PlasConfig, side: int, dev: torch.device, seeds: int) -> list[dict]:
    """One row per seed (printed with its radius bands), then their mean when seeds > 1."""
    rows = []
    for seed in range(seeds):
        r = run(side, dev, cfg, seed)
        r["variant"] = name
        r["config"] = cfg.__dict__
        rows.append(r)
        print(f"{name:<22}{side:>6}{r['seconds']:>10.3f}{r['nd_before']:>11.3f}{r['nd_after']:>10.4f}"
              f"{r.get('steps', 0):>8}{r.get('configs', 0):>8}  seed {seed}", flush=True)
        print_bands(r.get("per_level", []))
    if seeds > 1:
        mean = {k: sum(r[k] for r in rows) / seeds for k in ("seconds", "nd_after", "steps")}
        print(f"{name:<22}{side:>6}{mean['seconds']:>10.3f}{'':>11}{mean['nd_after']:>10.4f}"
              f"{mean['steps']:>8.0f}{'':>8}  mean of {seeds} seeds", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sides", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--variants", nargs="+", default=None, help="names from the sweep to run")
    ap.add_argument("--seeds", type=int, default=1, help="sort with seeds 0 .. N-1 and report the mean too")
    ap.add_argument("--micro", action="store_true", help="also time one step and one target (CUDA)")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "plas.json"))
    a = ap.parse_args()
    dev = resolve_device(a.device)
    run(64, dev, PlasConfig())  # warm-up
    micro_rows = ([micro(side, dev, dt) for side in a.sides for dt in (torch.float32, torch.float16)]
                  if a.micro and dev.type == "cuda" else [])
    rows = []
    variants = VARIANTS if a.sweep else {"default": PlasConfig()}
    if a.variants:
        variants = {k: VARIANTS[k] for k in a.variants}
    print(f"{'variant':<22}{'side':>6}{'seconds':>10}{'nd before':>11}{'nd after':>10}{'steps':>8}{'configs':>8}")
    for side in a.sides:
        for name, cfg in variants.items():
            rows += run_variant(name, cfg, side, dev, a.seeds)
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump({"device": device_label(dev), "rows": rows, "micro": micro_rows}, f, indent=2)


if __name__ == "__main__":
    main()
