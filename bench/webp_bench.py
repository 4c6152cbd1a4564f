"""Size vs time of lossless WebP effort settings on one scene's SOG images.

    python bench/webp_bench.py scene.ply [--settings 1:24,1:25,1:50] [--solo] [--threads 16] [--json out.json]

Runs the compressor's device stages once (sort, cluster, quantize), builds the images, then encodes
them with each (method, quality) pair: total bytes, wall seconds with the images spread over a
thread pool (what a Compressor does) and the slowest single image (the floor of that wall time).
`--solo` also encodes each image alone, one after another: its time without the other six
encodes beside it (they share the host's caches and memory bandwidth). The compressor's default
(webp_codec.WebpSettings) is chosen from this table (bench/NOTES.md).

libwebp's lossless `quality` is search effort: below 25 it skips the cost-based re-parse of the
LZ77 matches ("trace backwards"), which is why 24 and 25 are both worth a row.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from results_io import write_result  # noqa: E402  (bench/ is the script's own folder)
from sogs_core.pipeline.compressor import Compressor  # noqa: E402
from sogs_core.formats.ply.read import read_ply  # noqa: E402
from sogs_core.formats.sog.layout import build_images  # noqa: E402
from sogs_core.webp.codec import encode_webp  # noqa: E402
from sogs_core.settings import WebpSettings  # noqa: E402

DEFAULT_SETTINGS = "0:50,1:0,1:24,1:25,1:50,1:100,2:50,4:50,6:50"


def parse_settings(text: str) -> list[tuple[int, int]]:
    """"1:24,1:25" -> [(1, 24), (1, 25)] (method:quality pairs)."""
    out = []
    for item in text.split(","):
        method, _, quality = item.strip().partition(":")
        out.append((int(method), int(quality)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ply")
    ap.add_argument("--settings", default=DEFAULT_SETTINGS, help=f"method:quality pairs (default {DEFAULT_SETTINGS})")
    ap.add_argument("--solo", action="store_true", help="also time each image encoded alone")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default=None, help="default bench/results/webp.json")
    a = ap.parse_args()
    comp = Compressor(device=a.device)
    splats = read_ply(a.ply)
    q, _, futures, _, _ = comp._gpu_stages(splats, {}, with_fidelity=False)
    for fut in futures.values():          # the compressor's own encodes of every image
        fut.result()
    images, _ = build_images(q)
    comp.close()
    rows = []
    print(f"{'method':>6}{'quality':>8}{'bytes':>13}{'wall s':>8}{'slowest image s':>17}")
    with ThreadPoolExecutor(a.threads) as pool:
        for method, quality in parse_settings(a.settings):
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
            row = {"method": method, "quality": quality, "bytes": total, "wall_seconds": wall,
                   "slowest": {"image": slowest[0], "seconds": slowest[2]},
                   "images": {name: {"bytes": b, "seconds": s} for name, b, s in out}}
            print(f"{method:>6}{quality:>8}{total:>13,}{wall:>8.2f}{slowest[2]:>10.2f} {slowest[0]}", flush=True)
            if a.solo:
                for name, img in images.items():
                    t = time.perf_counter()
                    encode_webp(img, st)
                    row["images"][name]["solo_seconds"] = time.perf_counter() - t
                print("        solo: " + ", ".join(f"{n[:-5]} {r['bytes']:,} B {r['solo_seconds']:.2f} s"
                                                for n, r in row["images"].items()), flush=True)
            rows.append(row)
    path = write_result({"ply": a.ply, "threads": a.threads, "count": splats.count, "rows": rows}, a.json, "webp.json")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
