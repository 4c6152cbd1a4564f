"""The chained order's images started ahead of the order's choice, or after it: seconds per
scene, alternated in one process, and the bytes (which must be the same).

    python bench/images_ahead_ab.py SCENE... [--device auto] [--quality 80] [--rounds 8] [--json out.json]

Each scene is read once; both compressors (`Compressor(images_ahead=True/False)`) are warmed
and then take turns, so a host's drift touches both arms alike.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from results_io import write_result  # noqa: E402  (bench/ is the script's own folder)

from sogs_core.formats import read_scene  # noqa: E402
from sogs_core.pipeline.compressor import Compressor  # noqa: E402
from sogs_core.settings import CompressSettings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenes", nargs="+")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quality", type=int, default=80)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    settings = CompressSettings(quality=a.quality)
    comps = {arm: Compressor(device=a.device, settings=settings, images_ahead=arm == "ahead") for arm in ("ahead", "after")}
    rows = []
    for path in a.scenes:
        scene = read_scene(path)
        secs = {arm: [] for arm in comps}
        sizes = {}
        for arm, comp in comps.items():         # one warm run each
            sizes[arm] = comp.compress(scene, with_fidelity=True).output_bytes
        for _ in range(a.rounds):
            for arm, comp in comps.items():
                t0 = time.perf_counter()
                comp.compress(scene, with_fidelity=True)
                secs[arm].append(time.perf_counter() - t0)
        row = {"scene": path, "count": scene.splats.count, "bytes": sizes,
               **{f"{arm}_best": min(v) for arm, v in secs.items()},
               **{f"{arm}_median": statistics.median(v) for arm, v in secs.items()}, "seconds": secs}
        rows.append(row)
        print(f"{os.path.basename(path.rstrip('/')):32s} {row['count']:>9,}  ahead {row['ahead_best']:.3f} / "
              f"{row['ahead_median']:.3f} s   after {row['after_best']:.3f} / {row['after_median']:.3f} s   "
              f"bytes {'same' if sizes['ahead'] == sizes['after'] else sizes}", flush=True)
    write_result({"device": comps["ahead"].device_name, "host": platform.node(), "quality": a.quality,
                  "rounds": a.rounds, "scenes": rows}, a.json, "images_ahead_ab.json")
    for comp in comps.values():
        comp.close()


if __name__ == "__main__":
    main()
