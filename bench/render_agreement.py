"""Does our render metric (`sogs_core/render/score.py`, our torch rasterizer) agree with the
PlayCanvas engine (headless Chromium, the conformance truth) on what compression costs?

    SOGS_CACHE=.cache python bench/render_agreement.py [--scenes biker guitar ...] [--views 4]
        [--width 256] [--height 256] [--scenes-root ../shared/scenes] [--save-png DIR]
        [--st-extra 'playbot:-H 0'] [--work DIR [--reuse]] [--quality Q] [--engine-model | --exact]
        [--gl swiftshader|llvmpipe] [--json out.json]

For each shared scene (default all six: biker, guitar, playbot, logo_v1, leica_sh3, donut) the
original is compressed by us (`Compressor(device="cpu")`) and by splat-transform 3.7.0 (`-g cpu`,
the copy the tests install into .cache/; `--st-extra SCENE:ARGS` adds actions after its input).
The original, ours and theirs are rendered from the same cameras
(`views_around(read_splats(original).means, K)`, fov 60) at the same size by BOTH the engine
(`Renderer`) and our rasterizer (`render_scene`). Per scene and renderer: mean PSNR (per view,
capped at 100 dB as score.py does) and SSIM of ours and of theirs against that renderer's render
of the original; the difference raster minus engine for each file; whether both renderers rank
ours and theirs the same way. Also: seconds per view of each renderer on each scene's original
(the engine's includes starting Chromium and loading the file), and how close the two renderers'
pictures of the original are (PSNR raster vs engine, also with the raster image flipped, to catch
a flipped axis, and the mean colour per channel of each). And where each file's errors lie
(`error_split`): the pixels where our raster's error reaches 3 levels against the rest, with
each renderer's mean squared error in each part.

playbot's theirs is made with `-H 0` (SH dropped) unless `--st-extra playbot:` says otherwise:
splat-transform's CPU k-means of its SH palette (500k points, 24 dims, 65,536 centroids, kd-tree
assign, 10 iterations) had not finished after 26 minutes on a 2-core box. For this benchmark that
is still a fair file: the question is whether the two renderers score the same files alike, and
a file without SH tests their SH evaluation directly. The JSON records the arguments used.

Our raster copies the engine's work-buffer rounding by default, as the metric does (`--exact`:
without it). `--engine-model` renders our side as the engine rounds (`sogs_core/render/engine_model.py`: its
compact work buffer, its bucketed depth sort, its RGBA8 blending; each file's bounding box by its
kind). `--gl llvmpipe` runs the engine on Mesa's llvmpipe instead of SwiftShader: 4-5x faster,
but its pictures differ from SwiftShader's by several dB on some scenes (bench/NOTES.md, session 36).
`--work DIR --reuse` keeps the .sog files and reuses those already there. The JSON is written
after every scene, so an interrupted run keeps the scenes it finished.
`--save-png DIR` writes, per scene, view 0 of the original side by side: engine | our raster.
Needs Chromium (tests/browser.py installs it with apt) and node/npm (the engine and
splat-transform are fetched from npm on first use). JSON: default bench/results/render_agreement.json.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("SOGS_CACHE", os.path.join(ROOT, ".cache"))

import torch

from bench.results_io import write_result
from sogs_core.formats import read_splats
from sogs_core.pipeline.compressor import Compressor
from sogs_core.settings import CompressSettings
from sogs_core.render.cameras import views_around
from sogs_core.render.engine_model import source_kind
from sogs_core.render.harness import ENGINE_VERSION, GL_BACKENDS, Renderer, RenderError, find_browser
from sogs_core.render.metrics import psnr
from sogs_core.render.raster import Camera
from sogs_core.render.score import PSNR_CAP_DB, render_scene, score_views

FOV = 60.0
#: name -> the original's path under the scenes folder (a SOG folder is passed as its meta.json)
SCENES = {
    "biker": "real/biker.compressed.ply",
    "guitar": "real/guitar.compressed.ply",
    "playbot": "sog_refs/playbot_0_0/meta.json",
    "logo_v1": "sog_refs/playcanvas-logo_v1/meta.json",
    "leica_sh3": "real_float/leica-sofort-top8192.ply",
    "donut": "real_float/donut-mipsplat.ply",
}
#: splat-transform arguments (actions, after the input) per scene unless --st-extra overrides
ST_EXTRA = {"playbot": ["-H", "0"]}
#: an agreement within this many dB counts as "agrees" in the table
AGREE_DB = 0.5


def splat_transform_bin(explicit: str | None) -> str:
    if explicit:
        return explicit
    from tests import splat_transform  # the pinned copy the tests install into .cache/
    return splat_transform.ensure_installed()


def browser(explicit: str | None) -> str:
    try:
        return find_browser(explicit)
    except RenderError:
        from tests.browser import ensure_chromium
        return ensure_chromium()


def as_uint8(img) -> np.ndarray:
    """A render of `render_scene` (8-bit levels, a tensor or an array) as (H, W, 3) uint8."""
    if isinstance(img, torch.Tensor):
        img = img.cpu().numpy()
    return np.asarray(img).astype(np.uint8)


def capped(p: float) -> float:
    return min(p, PSNR_CAP_DB)


def rank(p_ours: float, p_theirs: float) -> str:
    return "ours" if p_ours > p_theirs else "theirs" if p_theirs > p_ours else "tie"


def closeness(engine: list[np.ndarray], raster: list[np.ndarray]) -> dict:
    """How alike the two renderers' pictures of one file are: PSNR as is and with the raster
    image flipped up-down / left-right / both, and the mean of each channel (0-255)."""
    def mean_psnr(f):
        return float(np.mean([capped(psnr(e, f(r))) for e, r in zip(engine, raster)]))
    return {"psnr": mean_psnr(lambda r: r), "psnr_flip_ud": mean_psnr(lambda r: r[::-1]),
            "psnr_flip_lr": mean_psnr(lambda r: r[:, ::-1]), "psnr_rot180": mean_psnr(lambda r: r[::-1, ::-1]),
            "engine_mean_rgb": [float(x) for x in np.mean([e.reshape(-1, 3).mean(0) for e in engine], 0)],
            "raster_mean_rgb": [float(x) for x in np.mean([r.reshape(-1, 3).mean(0) for r in raster], 0)],
            "engine_drawn": float(np.mean([(e.sum(2) > 0).mean() for e in engine])),
            "raster_drawn": float(np.mean([(r.sum(2) > 0).mean() for r in raster]))}


#: a difference of this many 8-bit levels or more (the largest channel) counts as visible in
#: `error_split`: below it lie the engine's own rounding noise and what no viewer tells apart
VISIBLE_LEVELS = 3


def error_split(engine_ref: list, engine_file: list, raster_ref: list, raster_file: list) -> dict:
    """Where the two renderers' errors of one file lie: the pixels split by our raster's own
    error (its largest channel at VISIBLE_LEVELS or more, or below), and in each part the mean
    squared error (per channel value, over the whole picture) that each renderer sees there.
    Equal shares in the visible part mean the renderers see the same visible errors, whatever
    noise either adds below it (bench/NOTES.md, session 39)."""
    de = np.stack(engine_file).astype(np.float64) - np.stack(engine_ref).astype(np.float64)
    dm = np.stack(raster_file).astype(np.float64) - np.stack(raster_ref).astype(np.float64)
    visible = np.abs(dm).max(-1) >= VISIBLE_LEVELS
    out = {"visible_levels": VISIBLE_LEVELS, "visible_pixels": float(visible.mean())}
    for part, mask in (("visible", visible), ("below", ~visible)):
        out[f"engine_mse_{part}"] = float((de[mask] ** 2).sum() / de.size)
        out[f"raster_mse_{part}"] = float((dm[mask] ** 2).sum() / dm.size)
    return out


def save_png(path: str, engine: np.ndarray, raster: np.ndarray) -> None:
    from PIL import Image
    gap = np.full((engine.shape[0], 4, 3), 255, np.uint8)
    Image.fromarray(np.concatenate([engine, gap, raster], 1)).save(path, optimize=True)


def run_scene(name: str, original: str, work: str, st: str, st_extra: list[str], renderer: Renderer, a) -> dict:
    ours, theirs = os.path.join(work, f"{name}_ours.sog"), os.path.join(work, f"{name}_theirs.sog")
    t_ours = t_theirs = None                         # None: reused from an earlier run (--reuse)
    if not (a.reuse and os.path.isfile(ours)):
        t0 = time.perf_counter()
        with Compressor(device="cpu", warm=False, settings=CompressSettings(quality=a.quality)) as comp:
            comp.compress(original, ours)
        t_ours = time.perf_counter() - t0
    if not (a.reuse and os.path.isfile(theirs)):
        t0 = time.perf_counter()
        proc = subprocess.run([st, "-q", "-w", "-g", "cpu", original, *st_extra, theirs], capture_output=True,
                              text=True, timeout=a.st_timeout, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"splat-transform {original} failed:\n{proc.stdout}\n{proc.stderr}")
        t_theirs = time.perf_counter() - t0

    views, near, far = views_around(read_splats(original).means, a.views, FOV)
    cams = [Camera(v, a.width, a.height, FOV, near, far) for v in views]
    files = {"original": original, "ours": ours, "theirs": theirs}
    imgs: dict[str, dict[str, list[np.ndarray]]] = {"engine": {}, "raster": {}}
    seconds: dict[str, dict[str, float]] = {"engine": {}, "raster": {}}
    for key, path in files.items():
        t0 = time.perf_counter()
        imgs["engine"][key] = renderer.render(path, views, FOV, near, far)
        seconds["engine"][key] = (time.perf_counter() - t0) / a.views
        splats = read_splats(path)                  # reading is not part of the render's time
        t0 = time.perf_counter()
        kind = source_kind(path) if a.engine_model else None
        imgs["raster"][key] = [as_uint8(img) for img in render_scene(splats, cams, engine_kind=kind,
                                                                      work_buffer=not a.exact)]
        seconds["raster"][key] = (time.perf_counter() - t0) / a.views

    row = {"scene": name, "original": original, "quality": a.quality, "views": a.views, "size": f"{a.width}x{a.height}",
           "near": near, "far": far, "ours_bytes": os.path.getsize(ours), "theirs_bytes": os.path.getsize(theirs),
           "splat_transform_args": ["-g", "cpu", *st_extra], "ours_compress_s": t_ours,
           "theirs_compress_s": t_theirs, "seconds_per_view": seconds}
    for r in ("engine", "raster"):
        for side in ("ours", "theirs"):
            s = score_views(imgs[r]["original"], imgs[r][side])
            row[f"{r}_{side}_psnr"] = s["render_psnr"]
            row[f"{r}_{side}_ssim"] = s["render_ssim"]
            row[f"{r}_{side}_per_view_psnr"] = [v["psnr"] for v in s["views"]]
    for side in ("ours", "theirs"):
        row[f"delta_{side}_db"] = row[f"raster_{side}_psnr"] - row[f"engine_{side}_psnr"]
    row["engine_rank"] = rank(row["engine_ours_psnr"], row["engine_theirs_psnr"])
    row["raster_rank"] = rank(row["raster_ours_psnr"], row["raster_theirs_psnr"])
    row["same_rank"] = row["engine_rank"] == row["raster_rank"]
    row["agree_within_db"] = AGREE_DB
    row["agree"] = abs(row["delta_ours_db"]) <= AGREE_DB and abs(row["delta_theirs_db"]) <= AGREE_DB
    row["engine_vs_raster"] = {key: closeness(imgs["engine"][key], imgs["raster"][key]) for key in files}
    row["error_split"] = {side: error_split(imgs["engine"]["original"], imgs["engine"][side],
                                            imgs["raster"]["original"], imgs["raster"][side])
                          for side in ("ours", "theirs")}
    if a.save_png:
        os.makedirs(a.save_png, exist_ok=True)
        png = os.path.join(a.save_png, f"{name}_view0_engine_vs_raster.png")
        save_png(png, imgs["engine"]["original"][0], imgs["raster"]["original"][0])
        row["png"] = png
    return row


def print_row(r: dict) -> None:
    c = r["engine_vs_raster"]["original"]
    print(f"{r['scene']:<10} {r['ours_bytes']:>10,} {r['theirs_bytes']:>10,}  "
          f"{r['engine_ours_psnr']:6.2f} {r['engine_ours_ssim']:.4f} {r['engine_theirs_psnr']:6.2f} "
          f"{r['engine_theirs_ssim']:.4f}  "
          f"{r['raster_ours_psnr']:6.2f} {r['raster_ours_ssim']:.4f} {r['raster_theirs_psnr']:6.2f} "
          f"{r['raster_theirs_ssim']:.4f}  {r['delta_ours_db']:+6.2f} {r['delta_theirs_db']:+6.2f}  "
          f"{r['engine_rank']:>6}/{r['raster_rank']:<6} {'yes' if r['same_rank'] else 'NO':>4}  "
          f"{r['seconds_per_view']['engine']['original']:6.2f} {r['seconds_per_view']['raster']['original']:6.2f}  "
          f"{c['psnr']:6.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", nargs="+", choices=list(SCENES), default=list(SCENES))
    ap.add_argument("--scenes-root", default=os.path.join(os.path.dirname(ROOT), "shared", "scenes"))
    ap.add_argument("--views", type=int, default=4, help="K cameras around each scene")
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--browser", default=None)
    ap.add_argument("--splat-transform", default=None, help="default: the tests' pinned copy in .cache/")
    ap.add_argument("--st-timeout", type=float, default=3600.0, help="seconds for one splat-transform run")
    ap.add_argument("--st-extra", action="append", default=[], metavar="SCENE:ARGS",
                    help="splat-transform actions for SCENE (after its input); default: playbot:-H 0")
    ap.add_argument("--engine-timeout", type=float, default=900.0, help="seconds for one engine render call")
    ap.add_argument("--save-png", default=None, metavar="DIR", help="view 0 of each original: engine | raster")
    ap.add_argument("--work", default=None, help="keep the .sog files here (default: a temporary folder)")
    ap.add_argument("--reuse", action="store_true", help="reuse the .sog files already in --work")
    ap.add_argument("--quality", type=int, default=100, help="our --quality level (default 100)")
    ap.add_argument("--engine-model", action="store_true",
                    help="our raster rounds as the engine does (work buffer, bucketed sort, RGBA8 blending)")
    ap.add_argument("--exact", action="store_true",
                    help="our raster without the engine's work-buffer rounding (the metric's default has it)")
    ap.add_argument("--gl", default=None, choices=list(GL_BACKENDS),
                    help="Chromium's WebGL back end (default: the harness's, SwiftShader)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    st_extra = dict(ST_EXTRA)
    for item in a.st_extra:
        scene, _, args = item.partition(":")
        if scene not in SCENES:
            ap.error(f"--st-extra {item}: unknown scene {scene}")
        st_extra[scene] = args.split()

    st = splat_transform_bin(a.splat_transform)
    renderer = Renderer(a.width, a.height, browser=browser(a.browser), timeout=a.engine_timeout, gl=a.gl)
    work = a.work or tempfile.mkdtemp(prefix="render-agreement-")
    os.makedirs(work, exist_ok=True)
    print(f"{a.views} views at {a.width}x{a.height}, fov {FOV:g}; engine {ENGINE_VERSION} on "
          f"{renderer.browser} ({renderer.gl}); raster "
          f"{'with the engine model' if a.engine_model else 'exact' if a.exact else 'with the work buffer'}; torch {torch.get_num_threads()} threads; PSNR capped at {PSNR_CAP_DB:g} dB")
    print(f"{'':<10} {'bytes':>10} {'':>10}  {'engine (vs its original)':<31}  {'raster (vs its original)':<31}  "
          f"{'raster-engine':<13}  {'higher PSNR':<13} {'same':>4}  {'s/view':<13}  {'orig':>6}")
    print(f"{'scene':<10} {'ours':>10} {'theirs':>10}  {'ours dB':>6} {'SSIM':<6} {'theirs':>6} {'SSIM':<6}  "
          f"{'ours dB':>6} {'SSIM':<6} {'theirs':>6} {'SSIM':<6}  {'ours':>6} {'theirs':>6}  "
          f"{'engine/raster':<13} {'rank':>4}  {'engine':>6} {'raster':>6}  {'e vs r':>6}")
    rows = []
    result = {"host": platform.node(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
              "engine_version": ENGINE_VERSION, "browser": renderer.browser, "gl": renderer.gl,
              "engine_model": a.engine_model, "exact": a.exact, "views": a.views,
              "width": a.width, "height": a.height, "fov_deg": FOV, "psnr_cap_db": PSNR_CAP_DB,
              "agree_within_db": AGREE_DB, "scenes": rows}
    try:
        for name in a.scenes:
            original = os.path.join(a.scenes_root, SCENES[name])
            if not os.path.exists(original):
                print(f"{name:<10} {original} not present: skipped", flush=True)
                continue
            rows.append(run_scene(name, original, work, st, st_extra.get(name, []), renderer, a))
            print_row(rows[-1])
            write_result(result, a.json, "render_agreement.json")
    finally:
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)
    agree = [r["scene"] for r in rows if r["agree"]]
    print(f"within {AGREE_DB} dB (ours and theirs): {', '.join(agree) or 'none'}; "
          f"same rank: {sum(r['same_rank'] for r in rows)} of {len(rows)}")
    print(f"wrote {write_result(result, a.json, 'render_agreement.json')}")


if __name__ == "__main__":
    main()
