"""Bytes against render quality: each scene compressed at several `--quality` levels by us and
once by splat-transform, every output scored by our render metric against the input.

    python bench/rd_curve.py [--scenes leica_sh3 donut guitar biker logo_v1] [--levels 100 90 80 70 60]
        [--views 4] [--size 256] [--splat-transform BIN] [--theirs DIR] [--device cpu|cuda]
        [--engine-model] [--json out.json] [--plot out.png]

CPU by default (`--device`); splat-transform with `-g cpu` (default: the 3.10.2 copy in
.cache/, `npm install --prefix .cache/splat-transform-3.10.2 @playcanvas/splat-transform@3.10.2`).
Render PSNR is our rasterizer's (the engine's footprint; same ranking as the engine on the shared
scenes, bench/NOTES.md); the engine's own numbers come from bench/render_agreement.py.
`--engine-model`: score as the engine rounds (`sogs_core/render/engine_model.py`; within 0.5-2 dB of
the engine on the shared scenes, several times slower on a CPU).
`--theirs DIR`: splat-transform's files written beforehand as DIR/<scene>.sog (for a machine
without Node, such as the device tool's; their seconds are then not measured).
JSON: default bench/results/rd_curve.json; plot: the JSON's path with .png.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch

from bench.rd_attribution import DEFAULT_ST, SCENES
from bench.results_io import write_result
from sogs_core.formats import read_splats
from sogs_core.pipeline.compressor import Compressor
from sogs_core.render.engine_model import source_kind
from sogs_core.render.score import RenderMetricSettings, render_fidelity
from sogs_core.settings import CompressSettings


def plot(result: dict, path: str) -> None:
    """One panel per scene: our levels as a line, splat-transform's point."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenes = result["scenes"]
    fig, axes = plt.subplots(1, len(scenes), figsize=(4 * len(scenes), 3.4), squeeze=False)
    for ax, (name, row) in zip(axes[0], scenes.items()):
        ours = row["ours"]
        ax.plot([p["bytes"] / 1e6 for p in ours], [p["psnr"] for p in ours], "o-", label="sogs-cluster")
        for p in ours:
            ax.annotate(str(p["quality"]), (p["bytes"] / 1e6, p["psnr"]), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
        if row.get("theirs"):
            ax.plot([row["theirs"]["bytes"] / 1e6], [row["theirs"]["psnr"]], "s", color="tab:red",
                    label="splat-transform")
        ax.set_title(name)
        ax.set_xlabel("MB")
        ax.set_ylabel("render PSNR (dB)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", nargs="+", default=["leica_sh3", "donut", "guitar", "biker", "logo_v1"],
                    choices=sorted(SCENES))
    ap.add_argument("--scenes-root", default=os.path.join(ROOT, "..", "shared", "scenes"))
    ap.add_argument("--levels", nargs="+", type=int, default=[100, 90, 80, 70, 60])
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--splat-transform", default=DEFAULT_ST)
    ap.add_argument("--theirs", default=None, help="folder of splat-transform's files, <scene>.sog")
    ap.add_argument("--device", default="cpu", help="where we compress and render (default cpu)")
    ap.add_argument("--engine-model", action="store_true", help="score as the engine rounds (slower)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--plot", default=None)
    args = ap.parse_args()
    settings = RenderMetricSettings(views=args.views, width=args.size, height=args.size, engine_model=args.engine_model)
    device = torch.device("cuda" if args.device in ("cuda", "auto") and torch.cuda.is_available() else "cpu")
    result = {"device": args.device, "views": args.views, "size": args.size, "levels": args.levels,
              "engine_model": args.engine_model,
              "splat_transform": args.splat_transform, "scenes": {}}
    path = None
    for name in args.scenes:
        src = os.path.join(args.scenes_root, SCENES[name])
        original = read_splats(src)
        kinds = (source_kind(src), "sog")
        row = {"count": original.count, "ours": []}
        for q in args.levels:
            t0 = time.perf_counter()
            data = Compressor(device=args.device, settings=CompressSettings(quality=q)).compress(
                src, with_fidelity=False).package.bundle_bytes()
            sec = time.perf_counter() - t0
            score = render_fidelity(original, read_splats(data, "out.sog"), settings, device, kinds)
            row["ours"].append({"quality": q, "bytes": len(data), "psnr": score["render_psnr"],
                                "ssim": score["render_ssim"], "seconds": sec})
            print(f"{name:10s} q{q:<4d} {len(data):>11,d} B {score['render_psnr']:7.2f} dB {sec:6.2f} s", flush=True)
        given = os.path.join(args.theirs, f"{name}.sog") if args.theirs else None
        if given and os.path.exists(given):
            score = render_fidelity(original, read_splats(given), settings, device, kinds)
            row["theirs"] = {"bytes": os.path.getsize(given), "psnr": score["render_psnr"],
                             "ssim": score["render_ssim"], "seconds": None, "file": given}
        elif os.path.exists(args.splat_transform):
            with tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "theirs.sog")
                t0 = time.perf_counter()
                subprocess.run([args.splat_transform, "-q", "-w", "-g", "cpu", src, out], check=True,
                               capture_output=True, timeout=3600)
                sec = time.perf_counter() - t0
                score = render_fidelity(original, read_splats(out), settings, device, kinds)
                row["theirs"] = {"bytes": os.path.getsize(out), "psnr": score["render_psnr"],
                                 "ssim": score["render_ssim"], "seconds": sec}
        if "theirs" in row:
            t = row["theirs"]
            secs = "-" if t["seconds"] is None else f"{t['seconds']:.2f}"
            print(f"{name:10s} splat-transform {t['bytes']:>11,d} B {t['psnr']:7.2f} dB {secs:>6s} s", flush=True)
            for p in row["ours"]:
                p["bytes_vs_theirs"] = p["bytes"] / t["bytes"]
                p["psnr_minus_theirs"] = p["psnr"] - t["psnr"]
        result["scenes"][name] = row
        path = write_result(result, args.json, "rd_curve.json")
    if path:
        plot(result, args.plot or os.path.splitext(path)[0] + ".png")


if __name__ == "__main__":
    main()
