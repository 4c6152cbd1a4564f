"""`sogs-cluster`: compress, decompress, inspect and compare scenes; `backfill` runs the Ray job.

Progress goes to stderr, results to stdout; bad input ends in one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional

from sogs_cli.options import (INPUT_FORMATS, PLAS_AUTO_COMPRESS, add_compress_options, add_edit_options,
                               add_scene_cap_option, add_streamed_options, apply_scene_cap,
                               compress_settings, memory_budget, streamed_settings)
from sogs_cli.progress import StageProgress
from sogs_cli.startup import import_torch_frozen
from sogs_core import __version__
from sogs_core.settings import (AUTO_GPU_PROCESSES, AUTO_GPU_SHARED_MIN_MEMORY, AUTO_GPU_SHARED_MIN_SPLATS,
                               AUTO_PROCESSES_MIN_SPLATS, PROCESS_GPU_MEMORY_MIB)
from sogs_core.model.errors import SogsError

EXIT_BAD_INPUT = 2
#: the commands that import torch (`startup.import_torch_frozen`); info, synth and report never do
TORCH_COMMANDS = ("compress", "decompress", "compare")


def _compress(args: argparse.Namespace) -> int:
    from sogs_core.model.device import resolve_device
    from sogs_core.pipeline.compressor import Compressor
    from sogs_core.pipeline.fidelity import format_report

    for path in args.inputs:
        if not os.path.exists(path):
            raise SogsError(f"{path}: no such file or folder")
    apply_scene_cap(args)
    out = args.output
    streamed = _writes_streamed(args)
    if streamed:
        pass                          # a folder, made by pipeline.streamed.write_streamed
    elif len(args.inputs) > 1:
        raise SogsError("several inputs are the levels of one streamed SOG: the output must be OUT_DIR/lod-meta.json "
                        "(or add --streamed)")
    elif out.endswith("/") or os.path.isdir(out):
        out = out.rstrip("/") or "."
    elif not out.lower().endswith(".sog"):
        raise SogsError(f"{out}: output must end in .sog (bundle), / (folder) or lod-meta.json (streamed)")
    device = resolve_device(args.device)
    try:
        settings = compress_settings(args, on_gpu=device.type == "cuda")
    except ValueError as exc:
        raise SogsError(str(exc)) from None
    if streamed and not settings.edit.identity:
        raise SogsError("--invalid drop, --rotate, --scale, --translate, the filters and --max-splats are not "
                        "supported for a streamed SOG yet: apply them to a single SOG, or write the edited scene "
                        "first")
    if args.processes is not None and args.processes < 1:
        raise SogsError(f"--processes must be at least 1 or auto, not {args.processes}")
    if args.processes is not None and args.processes > 1 and not streamed:
        raise SogsError("--processes applies to a streamed SOG (OUT_DIR/lod-meta.json or --streamed) only")
    if streamed:
        return _compress_streamed(args, str(device), settings, out)
    progress = None if args.quiet else StageProgress()
    # one scene: warming the kernels up first (what a reused Compressor is for) would only add time
    from sogs_core.render.score import RenderMetricSettings

    shown = args.json or not args.quiet     # -q without --json shows no fidelity: none is measured
    metric = RenderMetricSettings.if_wanted(args.render_metric, device) if shown else None
    with Compressor(device=str(device), settings=settings, progress=progress, warm=False,
                    render_metric=metric) as comp:
        if not args.quiet:
            print(f"sogs-cluster {__version__}: {args.inputs[0]} -> {out} on {comp.device_name}", file=sys.stderr)
        res = comp.compress(args.inputs[0], out, with_fidelity=shown)
    kept = ", its SOG v2 codes kept (re-ordered only)" if res.kept_codes else ""
    ed = res.edits
    if ed.applied:
        print(f"edits ({ed.applied}): {ed.input_splats} splats read, {ed.dropped_invalid} invalid dropped, "
              f"{ed.dropped_filter} filtered out, {ed.merged_budget} merged away")
    if ed.dropped_invisible:
        print(f"{ed.dropped_invisible} splats left out: their opacity is 0 at --quality {settings.quality} "
              f"(no viewer draws them)")
    print(f"{res.count} splats, SH degree {res.sh_degree} ({res.input_format}{kept}): {res.input_bytes:,} -> "
          f"{res.output_bytes:,} bytes ({res.ratio:.1f}x) in {res.seconds['total']:.2f}s")
    print("stages: " + ", ".join(f"{k} {v:.2f}s" for k, v in res.seconds.items() if k != "total"))
    if args.json:
        print(json.dumps({"output": out, "input_format": res.input_format, "kept_codes": res.kept_codes,
                          "count": res.count, "sh_degree": res.sh_degree, "edits": res.edits.as_dict(),
                          "input_bytes": res.input_bytes, "output_bytes": res.output_bytes,
                          "seconds": res.seconds, "fidelity": res.fidelity, "device": res.device}))
    elif not args.quiet:
        print(format_report(res.fidelity))
    return 0


def _non_negative_int(text: str) -> int:
    """A whole number >= 0 (an option where 0 means none)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _writes_streamed(args: argparse.Namespace) -> bool:
    """Whether compress writes a streamed SOG: --streamed, or an output named lod-meta.json."""
    return args.streamed or os.path.basename(args.output) == "lod-meta.json"


#: the fewest bytes a PLY row of a splat takes (position, scales, rotation, opacity, base
#: colour: 14 float32s): a PLY smaller than this many bytes per splat cannot hold a scene that
#: `--processes auto` writes with several processes
PLY_ROW_MIN_BYTES = 56


def _may_write_with_processes(args: argparse.Namespace) -> bool:
    """Whether this compress may start writing processes (a streamed SOG, --processes above 1,
    or auto and a PLY input large enough for them), so that their process server is worth
    starting before anything else. A guess from the arguments and file sizes only: a wrong
    yes costs a background import, a wrong no the seconds it would have saved."""
    if not _writes_streamed(args) or args.processes == 1:
        return False
    if args.processes is not None:
        return True
    first = args.inputs[0] if args.inputs else ""
    return first.lower().endswith(".ply") and os.path.isfile(first) \
        and os.path.getsize(first) >= AUTO_PROCESSES_MIN_SPLATS * PLY_ROW_MIN_BYTES


def _processes_arg(text: str) -> Optional[int]:
    """--processes: a count, or auto (None: `write_streamed` chooses)."""
    if text == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number or auto, not {text!r}") from None


def _compress_streamed(args: argparse.Namespace, device: str, settings, out: str) -> int:
    """IN (or the levels IN0 IN1 ..., finest first) -> a streamed SOG: lod-meta.json + chunks."""
    from sogs_core.pipeline.compressor import Compressor
    from sogs_core.pipeline.fidelity import format_report
    from sogs_core.pipeline.streamed import write_streamed

    try:
        lod = streamed_settings(args)
    except ValueError as exc:
        raise SogsError(str(exc)) from None

    def progress(done: int, total: int) -> None:
        if not args.quiet:
            print(f"  chunk group {done}/{total} written", file=sys.stderr, flush=True)

    with Compressor(device=device, settings=settings, warm=False) as comp:
        if not args.quiet:
            print(f"sogs-cluster {__version__}: {' '.join(args.inputs)} -> {out} (streamed) on {comp.device_name}",
                  file=sys.stderr)
        res = write_streamed(comp, args.inputs, out, lod, memory_budget=memory_budget(args),
                             progress=progress, processes=args.processes,
                             process_gpu_mib=args.process_gpu_memory, mps=False if args.no_mps else None)
        levels = _streamed_render_levels(args, res, settings, comp.device) if args.render_metric else None
    how = "read by ranges" if res.ranged else "read whole"
    print(f"{res.count} splats ({res.input_format}, {how}) -> {res.output}: {len(res.counts)} levels "
          f"{res.counts}, {res.groups} chunk groups, {res.files} SOG files, {res.input_bytes:,} -> "
          f"{res.output_bytes:,} bytes in {res.seconds['total']:.2f}s"
          + (f" by {res.processes} processes" if res.processes > 1 else "")
          + (" sharing the GPU through MPS" if res.mps else ""))
    if res.dropped_invisible:
        print(f"{res.dropped_invisible} level-0 splats left out: their opacity is 0 at --quality {settings.quality} "
              "(no viewer draws them)")
    print("stages (summed over chunks): " + ", ".join(f"{k} {v:.2f}s" for k, v in res.seconds.items() if k != "total"))
    if args.json:
        print(json.dumps({"output": res.output, "input_format": res.input_format, "count": res.count,
                          "counts": res.counts, "dropped_invisible": res.dropped_invisible,
                          "groups": res.groups, "files": res.files,
                          "input_bytes": res.input_bytes, "output_bytes": res.output_bytes,
                          "seconds": res.seconds, "fidelity": res.fidelity, "ranged": res.ranged,
                          "processes": res.processes, "mps": res.mps, "render_levels": levels}))
    elif not args.quiet:
        print(format_report(res.fidelity))
    return 0


def _streamed_render_levels(args: argparse.Namespace, res, settings, device) -> Optional[list]:
    """--render-metric on a streamed SOG: every level against the input, printed one line each;
    level 0's scores also go into the fidelity report. None (and a line why) where the input was
    read by ranges: the metric needs it whole."""
    import time

    from sogs_core.formats import read_scene
    from sogs_core.pipeline.streamed.render_levels import level_render_scores
    from sogs_core.render.score import SCORE_KEYS, RenderMetricSettings

    if res.ranged:
        print("render metric: skipped, the input is larger than --memory-budget and was read by ranges "
              "(the metric renders it whole)")
        return None
    t0 = time.perf_counter()
    reference = read_scene(args.inputs[0]).splats
    if settings.sh_bands is not None:
        reference = reference.with_sh_degree(settings.sh_bands)
    metric = RenderMetricSettings.for_device(device)
    levels = level_render_scores(res.output, reference, metric, device)
    res.fidelity.update({k: levels[0][k] for k in SCORE_KEYS})
    res.fidelity["render_size"] = metric.size_label
    res.seconds["render"] = time.perf_counter() - t0
    for lv in levels:
        print(f"level {lv['level']} ({lv['count']:,} splats) against the input: render PSNR "
              f"{lv['render_psnr']:.2f} dB (worst view {lv['render_psnr_worst_view']:.2f}), SSIM {lv['render_ssim']:.4f}")
    return levels


def _decompress(args: argparse.Namespace) -> int:
    from sogs_core.formats.ply.write import write_ply
    from sogs_core.formats import read_scene

    if os.path.basename(args.input) == "lod-meta.json":
        from sogs_core.formats.lod_meta.read import read_lod_level

        splats = read_lod_level(args.input, args.level)
        n = write_ply(args.output, splats)
        print(f"{splats.count} splats, SH degree {splats.sh_degree} (streamed SOG, level {args.level}) -> "
              f"{args.output} ({n:,} bytes)")
        return 0
    scene = read_scene(args.input)
    n = write_ply(args.output, scene.splats)
    print(f"{scene.splats.count} splats, SH degree {scene.splats.sh_degree} ({scene.format}) -> {args.output} ({n:,} bytes)")
    return 0


def _info(args: argparse.Namespace) -> int:
    from sogs_core.formats import read_scene
    from sogs_core.formats.sog.package import SOG_MAGICS, sog_info

    if os.path.basename(args.input) == "lod-meta.json":
        from sogs_core.formats.lod_meta.read import leaves, read_lod_meta

        meta = read_lod_meta(args.input)
        print(json.dumps({"path": args.input, "format": "streamed-sog", "levels": meta["lodLevels"],
                          "counts": meta.get("counts"), "files": len(meta["filenames"]),
                          "chunks": len(leaves(meta["tree"])), "asset": meta.get("asset", {})}, indent=2))
        return 0
    is_sog = os.path.isdir(args.input) or os.path.basename(args.input) == "meta.json"
    if not is_sog and os.path.isfile(args.input):
        with open(args.input, "rb") as f:
            is_sog = f.read(4) in SOG_MAGICS
    if is_sog:
        info = sog_info(args.input)
        info["format"] = f"sog-v{info['version']}"
    else:
        import_torch_frozen()           # a scene read whole: its readers may decode with torch
        scene = read_scene(args.input)
        info = {"path": args.input, "format": scene.format, "count": scene.splats.count,
                "sh_degree": scene.splats.sh_degree, "bytes": scene.input_bytes}
    print(json.dumps(info, indent=2))
    return 0


def _load_any(path: str):
    from sogs_core.formats import read_splats

    return read_splats(path)


def _compare(args: argparse.Namespace) -> int:
    from sogs_core.pipeline.fidelity import fidelity, format_report

    if (args.engine_model or args.exact) and args.render != "ours":
        raise SogsError("--engine-model and --exact apply to our rasterizer only (--render ours, the default)")
    if args.engine_model and args.exact:
        raise SogsError("--engine-model and --exact contradict each other: the engine model rounds as the engine does")
    a, b = _load_any(args.a), _load_any(args.b)
    report = fidelity(a, b)
    if args.render == "engine":
        report["render"] = _render_engine(args, a)
    elif args.render == "ours":
        report["render"] = _render_ours(args, a, b)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(format_report({k: v for k, v in report.items() if k != "render"}))
    if "render" in report:
        r = report["render"]
        print(f"render ({r['renderer']}, {r['size']}, {len(r['views'])} views):")
        for i, v in enumerate(r["views"]):
            print(f"  view {i}: PSNR {v['psnr']:.2f} dB  SSIM {v['ssim']:.4f}")
        print(f"  mean:   PSNR {r['render_psnr']:.2f} dB  SSIM {r['render_ssim']:.4f}  "
              f"(worst view {r['render_psnr_worst_view']:.2f} dB)")
    return 0


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
        if w > 0 and h > 0:
            return w, h
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"--size must look like 512x512, not {text!r}")


def _save_pngs(folder: str, ref: list, out: list) -> None:
    """A|B side by side, one PNG per view (renders as uint8 arrays, or 8-bit levels in tensors)."""
    import numpy as np
    import torch
    from PIL import Image

    def pixels(img) -> np.ndarray:
        return img if isinstance(img, np.ndarray) else img.to(torch.uint8).cpu().numpy()

    os.makedirs(folder, exist_ok=True)
    for i, (x, y) in enumerate(zip(ref, out)):
        Image.fromarray(np.concatenate([pixels(x), pixels(y)], axis=1)).save(os.path.join(folder, f"view_{i:02d}.png"))


def _render_ours(args: argparse.Namespace, original, other) -> dict:
    """Both scenes rendered by our rasterizer (the library's render metric) from the harness's
    cameras, framed on A."""
    from dataclasses import replace

    from sogs_core.model.device import resolve_device
    from sogs_core.render.engine_model import source_kind
    from sogs_core.render.score import RenderMetricSettings, render_pair, score_views

    device = resolve_device(args.device)
    settings = replace(RenderMetricSettings.for_device(device), engine_model=args.engine_model,
                       work_buffer=not args.exact)
    if args.views is not None:
        settings = replace(settings, views=args.views)
    if args.size is not None:
        settings = replace(settings, width=args.size[0], height=args.size[1])
    kinds = (source_kind(args.a), source_kind(args.b))
    ref, out = render_pair(original.means, original, other, settings, device, kinds)
    if args.save_png:
        _save_pngs(args.save_png, ref, out)
    report = score_views(ref, out)
    report.update(renderer=settings.renderer_label(device), size=f"{settings.width}x{settings.height}")
    return report


def _render_engine(args: argparse.Namespace, original) -> dict:
    """Both files rendered by the PlayCanvas engine from the same cameras (framed on A)."""
    from sogs_core.render import RenderError, Renderer, views_around
    from sogs_core.render.harness import ENGINE_VERSION
    from sogs_core.render.score import score_views

    width, height = args.size or (512, 512)
    views, near, far = views_around(original.means, args.views or 4)
    try:
        renderer = Renderer(width, height)
        ref = renderer.render(args.a, views, 60.0, near, far)
        out = renderer.render(args.b, views, 60.0, near, far)
    except RenderError as exc:
        raise SogsError(f"render failed: {exc}") from None
    if args.save_png:
        _save_pngs(args.save_png, ref, out)
    report = score_views(ref, out)
    report.update(renderer=f"playcanvas {ENGINE_VERSION}", size=f"{width}x{height}")
    return report


def _report(args: argparse.Namespace) -> int:
    try:
        from ray_jobs.report import write_report
        from ray_jobs.storage import Store
    except ImportError as exc:
        raise SogsError(f"report needs the 'report' extra ({exc.name} is missing): "
                        "pip install 'sogs-cluster[report]'") from None

    try:
        out = write_report(Store(), args.manifest, args.output, args.run, args.all)
    except ValueError as exc:
        raise SogsError(str(exc)) from None
    print(out)
    return 0


def _synth(args: argparse.Namespace) -> int:
    from sogs_core.formats.ply.write import write_ply
    from sogs_core.model.synth import synthetic_scene

    os.makedirs(args.folder, exist_ok=True)
    for i in range(args.count):
        path = os.path.join(args.folder, f"scene_{i:03d}.ply")
        write_ply(path, synthetic_scene(args.n, args.sh, seed=args.seed + i))
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sogs-cluster",
        description="Compress 3D Gaussian Splatting scenes to PlayCanvas SOG (v2), on a GPU when there is one. "
                    f"Reads {INPUT_FORMATS}; the format is recognised from the content.")
    p.add_argument("--version", action="version", version=f"sogs-cluster {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("compress", help="compress one scene to a .sog bundle, a SOG folder or a streamed SOG",
                       description="Compress IN to OUT.sog (one ZIP bundle) or OUT_DIR/ (meta.json + WebP files). "
                                   "Quantizes, clusters SH with k-means, orders the splats for bytes, prints sizes, stage times and the "
                                   f"fidelity of the result. IN: {INPUT_FORMATS}. A SOG v2 input keeps its stored codes and "
                                   "palette (only the order and the WebP encoding change, so it loses nothing a second time); "
                                   "--requantize quantizes it again instead. "
                                   "OUT_DIR/lod-meta.json (or --streamed) writes a streamed SOG for huge scenes, as "
                                   "PlayCanvas viewers stream it: the scene cut into chunks by a k-d tree over the "
                                   "centres (--chunk-*), --lod-levels levels of detail made by merging neighbouring "
                                   "splats in pairs (each level about half the one before, opacity and scale "
                                   "moment-matched), one SOG folder per chunk group at level 0 and per 2^k groups at level k, "
                                   "lod-meta.json last. "
                                   "Several inputs IN0 IN1 ... are the levels themselves, finest first (no merging).")
    c.add_argument("inputs", nargs="+", metavar="IN", help="the scene file (or SOG folder); for a streamed SOG "
                                                          "also the coarser levels, finest first")
    c.add_argument("output", metavar="OUT.sog|OUT_DIR/|OUT_DIR/lod-meta.json")
    c.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"],
                   help="where sort and k-means run (default: auto = CUDA if torch sees a GPU)")
    add_compress_options(c, PLAS_AUTO_COMPRESS)
    add_edit_options(c.add_argument_group("edits before compression (single SOG output)"))
    add_scene_cap_option(c)
    c.add_argument("--render-metric", action=argparse.BooleanOptionalAction, default=None,
                   help="render the input and the output with our rasterizer from the same cameras and report "
                        "PSNR/SSIM (render_psnr, render_ssim, render_psnr_worst_view), timed as the stage "
                        "'render'. Default for a single SOG: on with a GPU (8 views at 512x512, a few percent "
                        "of the time, about 2.5 GB more GPU memory at 1M SH3), off on a CPU (4 views at 128x128 cost 0.6-1.1 s for a 150k-splat scene "
                        "on 2 cores, about half a compression). A streamed SOG only on request: every level is "
                        "rendered against the input (render_levels in --json; level 0's scores in the report), "
                        "as long as the write itself, and only when the input is read whole (below "
                        "--memory-budget)")
    c.add_argument("--json", action="store_true", help="also print a JSON summary line")
    c.add_argument("-q", "--quiet", action="store_true",
                   help="no progress on stderr and no fidelity report (a single SOG then skips measuring it, "
                        "unless --json asks for it)")
    g = c.add_argument_group("streamed SOG (output OUT_DIR/lod-meta.json)")
    g.add_argument("--streamed", action="store_true", help="write a streamed SOG into OUT_DIR even if OUT does not "
                                                           "end in lod-meta.json")
    add_streamed_options(g)
    g.add_argument("--processes", type=_processes_arg, default=None, metavar="N|auto",
                   help="processes that write the streamed SOG together on the one device (default auto: on a "
                        f"CPU one per core for scenes of {AUTO_PROCESSES_MIN_SPLATS / 1e6:g}M splats or more, "
                        f"on a GPU {AUTO_GPU_PROCESSES} for {AUTO_GPU_SHARED_MIN_SPLATS / 1e6:g}M splats or more where it has "
                        f"{AUTO_GPU_SHARED_MIN_MEMORY >> 30} GiB, else 1): each writes a run of neighbouring chunk groups with its own compressor (the "
                        "few coarse files two runs share are packed by this process as soon as both hand their "
                        "part over), so "
                        "more kernels are launched at once (one process is bound by launching them, not by the "
                        "GPU; on a CPU one process keeps about one core busy); the files are the same. Each "
                        "process holds its own chunk groups and device memory, and opens the input itself: a "
                        "PLY is mapped and only its rows are read, any other format is read whole by each; on "
                        "a CPU each takes its share of the cores")
    g.add_argument("--process-gpu-memory", type=_non_negative_int, default=PROCESS_GPU_MEMORY_MIB, metavar="MIB",
                   help="where several processes write a streamed SOG on a GPU, the device memory each (and "
                        "this process, while it packs the files they share) may hold "
                        f"in torch's caching allocator (default {PROCESS_GPU_MEMORY_MIB}; 0: no cap). Uncapped, "
                        "each keeps the most it ever took; capped, it reuses its blocks, so more processes fit "
                        "on one GPU. Each also holds its CUDA context and kernels (about 2 GB) beyond this. A "
                        "process whose single call needs more fails with out of memory: raise it, or lower "
                        "--processes")
    g.add_argument("--no-mps", action="store_true",
                   help="where several processes write a streamed SOG on a GPU, they share it through a private "
                        "CUDA MPS server by default (started for this write with its own folders, so nothing "
                        "else on the machine uses it, and quit after; only where nvidia-cuda-mps-control is on "
                        "PATH and no MPS is set up already): their kernels then run side by side instead of the "
                        "GPU taking the processes in turns. --no-mps: without it")
    c.set_defaults(func=_compress)

    d = sub.add_parser("decompress", help="decode any supported scene (SOG v2/v1, SPZ, ...) to a 3DGS PLY")
    d.add_argument("input", metavar="IN", help=f"{INPUT_FORMATS}; or a streamed SOG's lod-meta.json")
    d.add_argument("output", metavar="OUT.ply")
    d.add_argument("--level", type=int, default=0, help="streamed SOG input (lod-meta.json): the level to decode "
                                                        "(default 0, the finest)")
    d.set_defaults(func=_decompress)

    i = sub.add_parser("info", help="print what a scene file holds: format, count, SH degree, bytes (JSON)")
    i.add_argument("input", metavar="FILE")
    i.set_defaults(func=_info)

    m = sub.add_parser("compare", help="per-attribute error between two scenes (any supported format), matched by "
                                       "position, and PSNR/SSIM of their renders",
                       description="A is the reference (the original), B the other (compressed) scene. Prints the "
                                   "per-attribute errors and, by default, PSNR and SSIM of both scenes rendered by our "
                                   "own rasterizer from the same cameras around A (the library's render metric: on a "
                                   "GPU 8 views at 512x512, on a CPU 4 views at 128x128; identical renders score "
                                   "100 dB). --render engine renders them in the PlayCanvas engine instead (headless "
                                   "Chromium, WebGL 2: the conformance truth, seconds per view).")
    m.add_argument("a", metavar="A")
    m.add_argument("b", metavar="B")
    m.add_argument("--json", action="store_true")
    m.add_argument("--render", nargs="?", const="engine", default="ours", choices=["ours", "engine", "off"],
                   help="how to render A and B: ours (default, the library's rasterizer), engine (the PlayCanvas "
                        "engine in headless Chromium; plain --render means this), off")
    m.add_argument("--views", type=int, default=None,
                   help="cameras on a circle around the scene (default: 8 on a GPU, 4 on a CPU and for the engine)")
    m.add_argument("--size", type=_size, default=None, metavar="WxH",
                   help="render size (default: 512x512 on a GPU and for the engine, 128x128 on a CPU)")
    m.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"],
                   help="where our rasterizer runs (default auto)")
    m.add_argument("--engine-model", action="store_true",
                   help="with --render ours: round all the way the PlayCanvas engine does (besides its work buffer, "
                        "which --render ours always copies, its bucketed depth sort and its 8-bit blending), which "
                        "brings the scores within 0.5-2 dB of --render engine on the shared scenes; several times "
                        "slower on a CPU")
    m.add_argument("--exact", action="store_true",
                   help="with --render ours: score the exact picture the files describe, without the engine's work "
                        "buffer rounding (scales on levels 8.6 %% apart, 11-bit rotations and colours, byte opacity)")
    m.add_argument("--save-png", default=None, metavar="DIR", help="write A|B side by side, one PNG per view")
    m.set_defaults(func=_compare)

    s = sub.add_parser("synth", help="write synthetic demo scenes (PLY) into a folder")
    s.add_argument("folder")
    s.add_argument("--count", type=int, default=4, help="number of scenes (default 4)")
    s.add_argument("--n", type=int, default=20000, help="splats per scene (default 20000)")
    s.add_argument("--sh", type=int, default=3, choices=[0, 1, 2, 3], help="SH degree (default 3)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_synth)

    r = sub.add_parser("report", help="one self-contained HTML page from a backfill manifest",
                       description="Read a backfill's Parquet manifest (a local folder or s3:// prefix) and write one "
                                   "HTML file that opens with no network: totals (ok/skipped/failed, bytes, ratio, wall "
                                   "time, scenes per minute, GPU-stage seconds per scene), plots (throughput, seconds "
                                   "per stage, ratio against splat count, fidelity against the quantization's bounds; "
                                   "they need the 'report' extra, matplotlib), the failures, the slowest scenes, the "
                                   "settings, versions, nodes and GPUs seen.")
    r.add_argument("manifest", metavar="MANIFEST_URI", help="the manifest prefix, e.g. out/_manifest or s3://b/sog/_manifest")
    r.add_argument("-o", "--output", default="report.html", help="where to write the page (local or s3://; default report.html)")
    which = r.add_mutually_exclusive_group()
    which.add_argument("--run", default=None, metavar="RUN_ID", help="the run to report (default: the latest)")
    which.add_argument("--all", action="store_true", help="every run in the manifest")
    r.set_defaults(func=_report)

    b = sub.add_parser("backfill", help="the Ray batch job (same as python -m ray_jobs.backfill)", add_help=False)
    b.add_argument("rest", nargs=argparse.REMAINDER)
    b.set_defaults(func=None)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "backfill":
        from ray_jobs.backfill import main as backfill_main
        return backfill_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "compress" and _may_write_with_processes(args):
        from sogs_core.pipeline.process_server import start_early

        start_early()                   # its imports run beside ours (`process_server`)
    if args.command in TORCH_COMMANDS:
        import_torch_frozen()
    try:
        return args.func(args)
    except SogsError as exc:
        print(f"sogs-cluster: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RuntimeError as exc:
        print(f"sogs-cluster: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
