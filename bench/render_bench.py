"""Seconds of the render metric (our rasterizer, sogs_core.render) on one scene: projection,
fragments, compositing per view, and the whole metric (both scenes, every view, PSNR and SSIM).

    python bench/render_bench.py scene.ply [--device auto] [--views 8] [--size 512] [--repeat 3]

The scene is compared with itself: the cost does not depend on the pixels' values. --profile
prints torch's profile of one scene's render (every view). Writes JSON (default bench/results/render_<name>.json).
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from results_io import scene_arguments, write_result  # noqa: E402  (bench/ is the script's own folder)

import torch  # noqa: E402

from sogs_core.formats import read_splats  # noqa: E402
from sogs_core.model.device import numpy_tensor, resolve_device  # noqa: E402
from sogs_core.model.splats import ATTRIBUTES  # noqa: E402
from sogs_core.render import raster  # noqa: E402
from sogs_core.render.score import RenderMetricSettings, cameras_for, render_scene, score_views  # noqa: E402


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def main() -> None:
    def extra(ap) -> None:
        ap.add_argument("--views", type=int, default=None)
        ap.add_argument("--size", type=int, default=None)
        ap.add_argument("--profile", action="store_true")
        ap.add_argument("--one-view-per-launch", action="store_true",
                        help="GPU: one tile-kernel launch per view (as before session 24)")
        ap.add_argument("--log-transmittance", action="store_true",
                        help="GPU: the tile kernel sums log(1 - alpha) instead of a running product")

    a = scene_arguments(__doc__, repeat=3, extra=extra)
    dev = resolve_device(a.device)
    settings = RenderMetricSettings.for_device(dev)
    if a.views:
        settings = RenderMetricSettings(views=a.views, width=settings.width, height=settings.height)
    if a.size:
        settings = RenderMetricSettings(views=settings.views, width=a.size, height=a.size)
    if a.one_view_per_launch:
        raster.VIEW_BATCH_SPLATS = 1
    if a.log_transmittance:
        from sogs_core.render import raster_tiles
        raster_tiles.LOG_DOMAIN = True
    splats = read_splats(a.ply)
    t = {k: numpy_tensor(getattr(splats, k)).to(dev).float() for k in ATTRIBUTES}
    cams = cameras_for(splats.means, settings)
    with torch.no_grad():
        render_scene(t, cams[:1])                         # warm-up
        _sync(dev)
        t0 = time.perf_counter()
        p = raster.project(t, cams[0])
        _sync(dev)
        t1 = time.perf_counter()
        # the fragments the CPU path makes (each splat's rows' runs inside its ellipse)
        fragments = int(raster._row_spans(p, raster._boxes(p, cams[0]), slice(None))[-1].sum())
        per_view, metric = [], []
        for _ in range(a.repeat):
            _sync(dev)
            s0 = time.perf_counter()
            ref = render_scene(t, cams)
            _sync(dev)
            s1 = time.perf_counter()
            out = render_scene(t, cams)
            report = score_views(ref, out)
            _sync(dev)
            s2 = time.perf_counter()
            per_view.append((s1 - s0) / len(cams))
            metric.append(s2 - s0)
        if a.profile:
            from torch.profiler import ProfilerActivity, profile

            acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
            with profile(activities=acts) as prof:
                render_scene(t, cams)
                _sync(dev)
            key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
            print(prof.key_averages().table(sort_by=key, row_limit=15))
    result = {"input": a.ply, "count": splats.count, "device": str(dev), "views": settings.views,
              "one_view_per_launch": a.one_view_per_launch, "log_transmittance": a.log_transmittance,
              "size": f"{settings.width}x{settings.height}", "project_seconds": t1 - t0,
              "fragments_view0": fragments, "render_seconds_per_view": per_view,
              "metric_seconds": metric, "render_psnr": report["render_psnr"]}
    print(f"{splats.count:,} splats on {dev}, {settings.views} views at {settings.width}x{settings.height}: "
          f"project {t1 - t0:.3f} s, {fragments:,} fragments in view 0, "
          f"render {min(per_view):.3f} s per view, whole metric {min(metric):.3f}-{max(metric):.3f} s")
    write_result(result, a.json, f"render_{os.path.splitext(os.path.basename(a.ply))[0]}.json")


if __name__ == "__main__":
    main()
