"""Size vs time of lossless WebP effort settings on one scene's SOG images.

    python bench/webp_bench.py scene.ply [--threads 16] [--json out.json]

Runs the compressor's GPU stages once (sort, cluster, quantize), builds the images, then encodes
them with each (method, quality) pair: total bytes, wall seconds with the images spread over a
thread pool (what a Compressor does) and the slowest single image (the floor of that wall time).
The compressor's default (webp_codec.WebpSettings) is chosen from this table (bench/NOTES.md).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sogs_core.compressor import Compressor  # noqa: E402
from sogs_core.readers.ply import read_ply  # noqa: E402
from sogs_core.sog_layout import build_images  # noqa: E402
from sogs_core.webp_codec import WebpSettings, encode_webp  # noqa: E402

SETTINGS = [(0, 50), (1, 0), (1, 50), (1, 100), (2, 0), (2, 50), (3, 50), (4, 50), (5, 50), (6, 50), (6, 100)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ply")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "webp.json"))
    a = ap.parse_args()
    comp = Compressor(device=a.device)
    splats = read_ply(a.ply)
    _, q = comp._gpu_stages(splats, {})
    images, _ = build_images(q)
    comp.close()
    rows = []
    print(f"{'method':>6}{'quality':>8}{'bytes':>13}{'wall s':>8}{'slowest image s':>17}")
    with ThreadPoolExecutor(a.threads) as pool:
        for method, quality in SETTINGS:
            st = WebpSettings(method=method, quality=quality, quality_overrides=())   # uniform, as swept

            def one(item):
                t = time.perf_counter()
                data = encode_webp(item[1], st)
                return item[0], len(data), time.perf_counter() - t

            t0 = time.perf_counter()
            out = list(pool.map(one, images.items()))
            wall = time.perf_counter() - t0
            total = sum(b for _, b, _ in out)
            slowest = max(out, key=lambda r: r[2])
            rows.append({"method": method, "quality": quality, "bytes": total, "wall_seconds": wall,
                         "slowest": {"image": slowest[0], "seconds": slowest[2]},
                         "images": {name: {"bytes": b, "seconds": s} for name, b, s in out}})
            print(f"{method:>6}{quality:>8}{total:>13,}{wall:>8.2f}{slowest[2]:>10.2f} {slowest[0]}", flush=True)
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump({"ply": a.ply, "threads": a.threads, "count": splats.count, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
