"""Checks of the GPU-only code paths against their torch references; run on the GPU machine.

    bash bench/gpu_check.sh            # or: python bench/gpu_check.py

What is checked, each on fresh random data (never zeros):
* PLAS CUDA target kernel == torch summed-area box mean (max abs error, float32 sums);
* PLAS CUDA group step == torch group step from identical state and keys (cells that differ:
  float ties only; cost sums agree);
* the persistent config kernel (a config's steps in one cooperative launch, stop decided on the
  device) == the same config run a step at a time with the gain read back; a level whose
  configs gain nothing ends after min_configs and its other configs leave the grid untouched;
* a whole PLAS sort on each backend: a permutation, neighbour distances within 2 %;
* Triton nearest-centroid search (tf32 and ieee) vs the torch matmul search: label agreement,
  distance error, and the inertia of a 10-step k-means run with each;
* the two-level palette search (the default): its fused Triton kernel labels like the per-cell
  torch search, its device memory goes with its last reference (no reference cycle), and 10
  Lloyd steps end within 0.5 % of the exact search's inertia;
* the Triton chain walk vs the torch one on the same bytes: each chunk a permutation of its
  members starting at the same splat, path costs within 0.5 % (float ties may break otherwise);
* the respelling nearest the identity on the device == on the CPU (the same rotations and scales
  for trained-like rotations and for rotations on the SOG grid, which only flip).
Prints one line per check and exits 1 if any fails.
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _cand in ("../shared/bench", "../../shared/bench", "../shared_carry/bench"):   # the shared scene generator
    _p = os.path.join(os.path.dirname(os.path.abspath(__file__)), _cand)
    if os.path.isfile(os.path.join(_p, "synth_scene.py")):
        sys.path.insert(0, _p)

import torch  # noqa: E402

from sogs_core.quantize.palette import kmeans as palette  # noqa: E402
from sogs_core.order.plas import (PlasConfig, TorchPlasBackend, neighbor_distance, plas_sort)  # noqa: E402

FAILED: list[str] = []


def check(name: str, ok: bool, detail: str) -> None:
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)
    if not ok:
        FAILED.append(name)


def plas_checks(dev: torch.device) -> None:
    from sogs_core.order.plas_cuda import CudaPlasBackend

    g = torch.Generator(device="cpu").manual_seed(int(time.time()))
    h, w, c = 200, 256, 13
    n = h * w - 77                                   # a padded last row
    cp, mask_ch = 16, c
    grid = torch.zeros(h * w, cp)
    grid[:n, :c] = torch.randn(n, c, generator=g)
    grid[:n, mask_ch] = 1
    grid = grid.to(dev)
    order = torch.full((h * w,), -1, dtype=torch.int32)
    order[:n] = torch.randperm(n, generator=g).to(torch.int32)
    order = order.to(dev)
    tb = TorchPlasBackend(h, w, n, cp, mask_ch, dev)
    cb = CudaPlasBackend(h, w, n, cp, mask_ch, dev)
    for r in (1, 3, 40, 127):
        t_ref = torch.full_like(grid, float("nan"))
        t_cu = torch.full_like(grid, float("nan"))
        tb.target(grid, r, t_ref)
        cb.target(grid, r, t_cu)
        err = float((t_ref - t_cu).abs().max())
        check(f"plas target r={r}", bool(torch.isfinite(t_cu).all()) and err < 1e-4, f"max abs err {err:.2e}")
    target = torch.empty_like(grid)
    tb.target(grid, 3, target)
    for block, sy, sx in ((8, 3, 5), (16, 0, 15), (64, 63, 1), (200, 7, 9)):
        keys = tuple(int(k) for k in torch.randint(0, 2**32, (4,), generator=g, dtype=torch.int64))
        g1, o1, s1 = grid.clone(), order.clone(), torch.zeros(2, dtype=torch.float64, device=dev)
        g2, o2, s2 = grid.clone(), order.clone(), torch.zeros(2, dtype=torch.float64, device=dev)
        tb.step(g1, o1, target, block, sy, sx, keys, s1)
        cb.step(g2, o2, target, block, sy, sx, keys, s2)
        moved = int((o1 != order).sum())
        diff = int((o1 != o2).sum())
        rel = float(((s1 - s2).abs() / s1.abs().clamp_min(1e-9)).max())
        same_rows = bool(torch.equal(g2[o2 >= 0][:, mask_ch], torch.ones(n, device=dev)))
        check(f"plas step block={block}", diff <= max(8, moved // 1000) and rel < 1e-5 and same_rows,
              f"cells moved {moved}, cells differing {diff}, sums rel err {rel:.1e}")
    gh = grid.half()
    tbh = TorchPlasBackend(h, w, n, cp, mask_ch, dev)
    cbh = CudaPlasBackend(h, w, n, cp, mask_ch, dev, torch.float16)
    t_ref = torch.empty_like(gh)
    t_cu = torch.empty_like(gh)
    tbh.target(gh, 5, t_ref)
    cbh.target(gh, 5, t_cu)
    err = float((t_ref.float() - t_cu.float()).abs().max())
    check("plas target fp16 r=5", err < 5e-3, f"max abs err {err:.2e}")
    keys = (11, 22, 33, 44)
    g1, o1, s1 = gh.clone(), order.clone(), torch.zeros(2, dtype=torch.float64, device=dev)
    g2, o2, s2 = gh.clone(), order.clone(), torch.zeros(2, dtype=torch.float64, device=dev)
    tbh.step(g1, o1, t_ref, 16, 2, 3, keys, s1)
    cbh.step(g2, o2, t_ref, 16, 2, 3, keys, s2)
    diff = int((o1 != o2).sum())
    check("plas step fp16 block=16", diff <= 8 and bool(torch.equal(g1, g2)) == (diff == 0),
          f"cells moved {int((o1 != order).sum())}, cells differing {diff}")
    persistent_checks(cb, grid, order, mask_ch, n, dev)
    side = 256
    feats = torch.randn(side * side, 13, generator=g).to(dev)
    feats[:, :3] += torch.linspace(-3, 3, side * side, device=dev)[:, None]
    nds = {}
    for be in ("torch", "cuda"):
        st: dict = {}
        t0 = time.perf_counter()
        # a short schedule: the torch backend takes ~0.1 s a step here
        cfg = PlasConfig(radius_decay=0.8, improvement_break=1e-3, fine_radius=0, mid_radius=0, coarse_radius=0)
        o = plas_sort(feats, (side, side), seed=1, config=cfg, backend=be, stats=st)
        torch.cuda.synchronize()
        secs = time.perf_counter() - t0
        perm = bool(torch.equal(torch.sort(o).values, torch.arange(side * side, device=dev)))
        nds[be] = neighbor_distance(feats[o].reshape(side, side, -1))
        st.pop("per_level", None)
        check(f"plas sort {be} is a permutation", perm, f"nd {nds[be]:.4f} in {secs:.2f} s, {st}")
    rel = abs(nds["cuda"] - nds["torch"]) / nds["torch"]
    check("plas sort cuda ~ torch", rel < 0.02, f"nd rel diff {rel:.4f}")


def persistent_checks(cb, grid: torch.Tensor, order: torch.Tensor, mask_ch: int, n: int,
                      dev: torch.device) -> None:
    from sogs_core.order.plas_steps import run_level_stepwise
    check("plas persistent kernel available", cb.persistent, f"cooperative grid of {cb._coop_blocks} blocks")
    if not cb.persistent:
        return
    draws = [(3, 5, (101, 202, 303, 404)), (7, 1, (5, 6, 7, 8)), (0, 0, (9, 10, 11, 12))]
    for block, r, brk in ((8, 3, 1e-4), (16, 7, 1e-5), (64, 31, 1e-3)):
        g1, o1, t1 = grid.clone(), order.clone(), torch.empty_like(grid)
        g2, o2, t2 = grid.clone(), order.clone(), torch.empty_like(grid)
        c1 = torch.zeros(len(draws), dtype=torch.int32, device=dev)
        c2 = torch.zeros(len(draws), dtype=torch.int32, device=dev)
        run_level_stepwise(cb, g1, o1, t1, r, block, draws, brk, 2, 256, c1)
        cb.run_level(g2, o2, t2, r, block, draws, brk, 2, 256, c2)
        torch.cuda.synchronize()
        diff = int((o1 != o2).sum())
        perm = bool(torch.equal(torch.sort(o2[o2 >= 0]).values, torch.sort(order[order >= 0]).values))
        check(f"plas persistent config block={block}", c1.tolist() == c2.tolist() and diff == 0 and perm,
              f"steps per config {c2.tolist()} (per-step run {c1.tolist()}), cells differing {diff}")
    # no config can gain 100 %: each stops after its first step and the level after min_configs
    g3, o3, t3 = grid.clone(), order.clone(), torch.empty_like(grid)
    draws = [(i % 4, (3 * i) % 4, (i, i + 1, i + 2, i + 3)) for i in range(8)]
    c3 = torch.zeros(len(draws), dtype=torch.int32, device=dev)
    cb.run_level(g3, o3, t3, 5, 4, draws, 1.0, 3, 256, c3)
    g4, o4, t4 = grid.clone(), order.clone(), torch.empty_like(grid)
    c4 = torch.zeros(len(draws), dtype=torch.int32, device=dev)
    cb.run_level(g4, o4, t4, 5, 4, draws[:3], 1.0, 3, 256, c4[:3])
    torch.cuda.synchronize()
    check("plas persistent level end", c3.tolist() == [1, 1, 1, 0, 0, 0, 0, 0] and torch.equal(o3, o4)
          and torch.equal(g3, g4), f"steps per config {c3.tolist()}, skipped configs left the grid as it was")


def kmeans_checks(dev: torch.device) -> None:
    g = torch.Generator(device="cpu").manual_seed(int(time.time()) + 1)
    x = (torch.randn(200_000, 45, generator=g) * torch.rand(45, generator=g)).to(dev)
    cents = x[torch.randperm(len(x), generator=g)[:4096].to(dev)].clone() + 0.01
    ref_l, ref_d = palette.assign(x, cents)
    for method in ("triton", "triton-ieee"):
        find = palette.nearest_fn(x, method)
        lab, dist = find(cents)
        agree = float((lab == ref_l).float().mean())
        # a different label is fine only if its distance ties the best within tf32 rounding
        d_err = float(((dist - ref_d).abs() / ref_d.clamp_min(1e-6)).max())
        true_d = ((x - cents[lab]) ** 2).sum(1)
        excess = float((true_d.double().sum() - ref_d.double().sum()) / ref_d.double().sum())
        lim = 1e-6 if method == "triton-ieee" else 1e-4
        check(f"nearest {method}", agree > 0.99 and excess < lim,
              f"labels agree {agree:.5f}, max rel dist err {d_err:.1e}, inertia excess {excess:.2e}")
    inertia = {}
    for method in ("torch", "triton"):
        _, _, inertia[method] = palette.kmeans(x, 4096, iterations=10, seed=3, method=method)
    rel = (inertia["triton"] - inertia["torch"]) / inertia["torch"]
    check("kmeans inertia triton <= torch (+1e-4)", rel < 1e-4,
          f"torch {inertia['torch']:.6e}, triton {inertia['triton']:.6e}, rel {rel:+.2e}")
    # the two-level search (the default): its fused kernel labels like the torch cell search, and
    # 10 Lloyd steps end within 0.5 % of the exact search's inertia (the speed issue's bound)
    from sogs_core.quantize.palette.cells import CellLayout, CellSearch

    sh = _synth_rest(dev, 262144)
    cents = sh[torch.randperm(len(sh), device=dev)[:16384]]
    search = CellSearch(sh)
    fused = search(cents)
    per_cell = search.per_cell(cents, CellLayout.build(sh, cents, search.probe))
    agree = float((fused[0] == per_cell[0]).float().mean())
    check("cells fused == torch per cell", agree > 0.999, f"labels agree {agree:.5f}")
    # the fused search's padded rows go with its last reference, not at the collector's next run
    import gc
    import weakref

    ref, held = weakref.ref(search), torch.cuda.memory_allocated(dev)
    gc.disable()
    del search
    freed = held - torch.cuda.memory_allocated(dev)
    gc.enable()
    check("cell search freed without the collector", ref() is None and freed >= sh.numel() * 4,
          f"object gone: {ref() is None}, {freed / 2**20:.0f} MiB freed at once")
    for method in ("torch", "cells"):
        _, _, inertia[method] = palette.kmeans(sh, 16384, iterations=10, seed=3, method=method)
    rel = (inertia["cells"] - inertia["torch"]) / inertia["torch"]
    check("kmeans inertia cells <= exact (+0.5 %)", rel < 5e-3,
          f"exact {inertia['torch']:.6e}, cells {inertia['cells']:.6e}, rel {rel:+.2e}")


def _synth_rest(dev: torch.device, n: int) -> torch.Tensor:
    """SH rest coefficients (n, 45) of the shared synthetic scene, or structured noise without it."""
    try:
        from synth_scene import synth_scene  # type: ignore
    except ImportError:
        g = torch.Generator(device="cpu").manual_seed(2)
        centres = torch.randn(512, 45, generator=g) * 0.05
        return (centres[torch.randint(0, 512, (n,), generator=g)] + 0.02 * torch.randn(n, 45, generator=g)).to(dev)
    return torch.from_numpy(synth_scene(n, seed=7, sh_degree=3)["f_rest"]).float().to(dev)


def chain_checks(dev: torch.device) -> None:
    from sogs_core.order.chain import bit_cost, greedy_chain

    gen = torch.Generator(device="cpu").manual_seed(5)
    n, k = 200_003, 128
    # bytes with local structure, as along a curve: a random walk per channel plus noise
    walk = torch.randint(-3, 4, (n, 14), generator=gen).cumsum(0)
    cols = ((walk + torch.randint(0, 40, (n, 14), generator=gen)) % 256).to(torch.uint8).to(dev)
    w = torch.ones(14, device=dev)
    w[:3] = 3.0
    seq = torch.randperm(n, generator=gen).to(dev)

    def cost(order: torch.Tensor) -> float:
        x = cols[order].to(torch.int16)
        d = (x[1:] - x[:-1]).abs().float()
        return float((bit_cost(d) @ w).sum())

    out = {}
    for method in ("torch", "triton"):
        greedy_chain(seq, cols, w, k, method=method)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out[method] = greedy_chain(seq, cols, w, k, method=method)
        torch.cuda.synchronize()
        out[method + "_s"] = time.perf_counter() - t0
    m = n // k * k
    a, b = out["torch"], out["triton"]
    same_sets = bool((a[:m].view(-1, k).sort(1).values == b[:m].view(-1, k).sort(1).values).all())
    same_start = bool((a[:m:k] == b[:m:k]).all()) and bool((a[m:] == b[m:]).all())
    ca, cb = cost(a), cost(b)
    check("chain triton ~ torch", same_sets and same_start and abs(cb - ca) / ca < 5e-3 and cb < cost(seq),
          f"chunks permuted alike {same_sets and same_start}, path cost torch {ca:.6e} triton {cb:.6e} "
          f"(input {cost(seq):.3e}); {out['torch_s'] * 1e3:.1f} ms vs {out['triton_s'] * 1e3:.1f} ms at n={n}")


def raster_checks(dev: torch.device) -> None:
    """The tile kernel's compositing against the fragment path, a 200k-splat SH1 scene at 512^2:
    both views in one launch (running product), then one view summing logs."""
    from sogs_core.model.synth import synthetic_scene
    from sogs_core.render import raster, raster_tiles
    from sogs_core.render.score import RenderMetricSettings, _prepared, cameras_for

    s = synthetic_scene(200_000, 1, seed=3)
    t = _prepared(s, dev)
    cams = cameras_for(s.means, RenderMetricSettings(views=2, width=512, height=512))
    ps = [raster.project(t, cam) for cam in cams]
    bs = [raster._boxes(p, cam) for p, cam in zip(ps, cams)]
    pv, counts = raster.project_views(t, cams)              # both views projected at once
    bv = raster._boxes(pv, cams[0])
    n = 512 * 512
    limits = (raster.FALLOFF_FLOOR, raster.ALPHA_MIN, raster.ALPHA_MAX, raster.MIN_TRANSMITTANCE)
    both = raster_tiles.composite_views(pv, bv, counts, 512, 512, *limits)
    raster_tiles.LOG_DOMAIN = True
    logs = raster_tiles.composite_views(ps[0], bs[0], [len(ps[0]["u"])], 512, 512, *limits)
    raster_tiles.LOG_DOMAIN = False
    for k, (cam, p, boxes) in enumerate(zip(cams + cams[:1], ps + ps[:1], bs + bs[:1])):
        a_rgb, a_lt = raster.composite(p, boxes, cam.width, cam.height, tiles=False)
        b_rgb, b_lt = (both[0][k * n:(k + 1) * n], both[1][k * n:(k + 1) * n]) if k < 2 else logs
        d = float((a_rgb - b_rgb).abs().max())
        levels = int((raster.to_levels(a_rgb) != raster.to_levels(b_rgb)).sum())
        check(f"raster tiles == fragments, view {k % 2}" + (" (log sums)" if k == 2 else ""), d < 5e-4 and levels <= a_rgb.numel() // 1000,
              f"max |rgb| {d:.2e}, {levels} of {a_rgb.numel()} 8-bit values differ, {len(p['u'])} splats drawn")


def engine_checks(dev: torch.device) -> None:
    """The engine's rounding on the device against the CPU's: the default metric's work buffer
    (the tile kernel against the CPU's fragments) and the whole engine model (sort and RGBA8
    blending in torch ops on both), a 50k-splat SH1 scene at 256^2, two views."""
    from sogs_core.model.synth import synthetic_scene
    from sogs_core.render.score import RenderMetricSettings, cameras_for, render_scene

    s = synthetic_scene(50_000, 1, seed=5)
    cams = cameras_for(s.means, RenderMetricSettings(views=2, width=256, height=256))
    for name, kw in (("work buffer", {"work_buffer": True}), ("engine model", {"engine_kind": "ply"})):
        cpu = render_scene(s, cams, device=torch.device("cpu"), **kw)
        gpu = render_scene(s, cams, device=dev, **kw)
        differ = sum(int((a != b.cpu()).sum()) for a, b in zip(cpu, gpu))
        total = sum(a.numel() for a in cpu)
        worst = max(float((a - b.cpu()).abs().max()) for a, b in zip(cpu, gpu))
        check(f"{name} on the device == on the CPU", differ <= total // 1000 and worst <= 2.0,
              f"{differ} of {total} 8-bit values differ, by at most {worst:.0f}")


def spelling_checks(dev: torch.device) -> None:
    """`respell_near_identity` on the device (every row checked against the SOG grid, no
    read-back) against the CPU's path (only the turned rows checked): the same spellings."""
    from sogs_core.formats.sog.codes import decode_quats, encode_quats
    from sogs_core.quantize.spelling import respell_near_identity

    g = torch.Generator().manual_seed(5)
    trained = torch.randn(400_000, 4, generator=g)
    grid = decode_quats(encode_quats(torch.randn(100_000, 4, generator=g)))
    for name, quats in (("trained-like", trained), ("on the SOG grid", grid)):
        scales = torch.randn(len(quats), 3, generator=g)
        q_cpu, s_cpu = respell_near_identity(quats, scales)
        q_dev, s_dev = respell_near_identity(quats.to(dev), scales.to(dev))
        same_rows = int((s_dev.cpu() == s_cpu).all(1).sum())
        d = float((q_dev.cpu() - q_cpu).abs().max())
        check(f"respelling on the device == on the CPU, {name}", same_rows == len(quats) and d < 1e-6,
              f"{same_rows} of {len(quats)} scale rows the same, max |q| difference {d:.1e}")


def main() -> None:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        sys.exit(2)
    dev = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(dev)}; torch {torch.__version__}")
    groups = {"plas": plas_checks, "kmeans": kmeans_checks, "chain": chain_checks, "raster": raster_checks,
              "spelling": spelling_checks, "engine": engine_checks}
    only = sys.argv[1:] or list(groups)          # e.g. `gpu_check.py raster`: that group alone
    for name in only:
        groups[name](dev)
    print("all passed" if not FAILED else f"{len(FAILED)} failed: {', '.join(FAILED)}")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
