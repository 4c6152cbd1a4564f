"""Time each stage of compressing one PLY and write the figures as JSON.

    python bench/compress_bench.py scene.ply [--device auto] [--repeat 2] [--json out.json] [--render-metric]
        [--webp-encoder auto|libwebp|own] [--quality Q]

The first `compress` after construction is timed separately from the warm ones (an actor's
first scene vs the rest). Prints a table; writes JSON (default bench/results/compress_<name>.json).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from results_io import write_result  # noqa: E402  (bench/ is the script's own folder)

from sogs_core.pipeline.compressor import Compressor  # noqa: E402

from sogs_core.settings import CompressSettings  # noqa: E402
from sogs_core.settings import ChainConfig, WebpSettings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ply")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", default=None, help="where to write the .sog (default: memory only)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--webp-encoder", default="auto", choices=["auto", "libwebp", "own"],
                    help="which lossless WebP encoder writes the images (as `compress --webp-encoder`)")
    ap.add_argument("--quality", type=int, default=100, help="--quality level (default 100)")
    ap.add_argument("--render-metric", action="store_true",
                    help="also run the render metric (our rasterizer, RenderMetricSettings.for_device), timed as 'render'")
    ap.add_argument("--no-images-ahead", action="store_true",
                    help="start the final images only once the order is chosen (Compressor(images_ahead=False))")
    ap.add_argument("--chain-chunk", type=int, default=0,
                    help="splats re-chained together by the chain order (ChainConfig.chunk; 0: the default)")
    a = ap.parse_args()
    t0 = time.perf_counter()
    metric = None
    if a.render_metric:
        from sogs_core.model.device import resolve_device
        from sogs_core.render.score import RenderMetricSettings

        metric = RenderMetricSettings.for_device(resolve_device(a.device))
    settings = CompressSettings(webp=WebpSettings(encoder=a.webp_encoder), quality=a.quality,
                                chain=ChainConfig(chunk=a.chain_chunk))
    comp = Compressor(device=a.device, settings=settings, render_metric=metric, images_ahead=not a.no_images_ahead)
    init_s = time.perf_counter() - t0
    with open(a.ply, "rb") as f:
        data = f.read()
    runs = []
    for i in range(a.repeat):
        res = comp.compress(data, a.out, name=os.path.basename(a.ply))
        runs.append({"seconds": res.seconds, "output_bytes": res.output_bytes,
                     "files": {k: len(v) for k, v in res.package.files.items()}})
        print(f"run {i}: " + "  ".join(f"{k} {v:.3f}" for k, v in res.seconds.items()), flush=True)
    best = min(runs, key=lambda r: r["seconds"]["total"])
    import torch

    peak = torch.cuda.max_memory_reserved(comp.device) if comp.device.type == "cuda" else None
    result = {"input": a.ply, "input_bytes": len(data), "count": res.count, "sh_degree": res.sh_degree, "quality": a.quality,
              "chain_chunk": a.chain_chunk, "images_ahead": not a.no_images_ahead, "webp_encoder": a.webp_encoder, "render_metric": a.render_metric, "device": comp.device_name, "host": platform.node(), "init_seconds": init_s,
              "runs": runs, "best": best, "peak_gpu_reserved_bytes": peak, "fidelity": res.fidelity, "ratio": len(data) / best["output_bytes"]}
    print(f"\n{'stage':<10}{'seconds':>10}")
    for k, v in best["seconds"].items():
        print(f"{k:<10}{v:>10.3f}")
    print(f"device {comp.device_name}; {res.count} splats; {len(data):,} -> {best['output_bytes']:,} bytes "
          f"({result['ratio']:.1f}x); init {init_s:.2f}s; peak GPU reserved {peak}")
    print(json.dumps(res.fidelity))
    write_result(result, a.json, f"compress_{os.path.splitext(os.path.basename(a.ply))[0]}.json")
    comp.close()


if __name__ == "__main__":
    main()
