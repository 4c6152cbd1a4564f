"""What the render metric adds to a compression (issue 28's <= 5 % target): one scene compressed
by two warm compressors in one process, one with the metric and one without, alternated run by
run so that both see the same host and the same GPU state.

    python bench/metric_cost_bench.py SCENE.ply [--rounds 10] [--quality 80] [--device auto] [--json out.json]

Prints each round's pair, then the medians, the best of each and the median of the paired
differences; JSON: default bench/results/metric_cost.json.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.results_io import write_result  # noqa: E402
from sogs_core.model.device import resolve_device  # noqa: E402
from sogs_core.pipeline.compressor import Compressor  # noqa: E402
from sogs_core.render.score import RenderMetricSettings  # noqa: E402
from sogs_core.settings import CompressSettings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scene")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--quality", type=int, default=80)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    device = resolve_device(a.device)
    settings = CompressSettings(quality=a.quality)
    with open(a.scene, "rb") as f:
        data = f.read()
    name = os.path.basename(a.scene)
    with Compressor(device=a.device, settings=settings, render_metric=RenderMetricSettings.for_device(device)) as on, \
            Compressor(device=a.device, settings=settings, render_metric=None) as off:
        for comp in (on, off):                       # warm: first-call compiles and caches
            comp.compress(data, name=name)
        rounds = []
        for i in range(a.rounds):
            # alternate which goes first, so that neither always follows the other
            first, second = (on, off) if i % 2 == 0 else (off, on)
            res = {id(first): first.compress(data, name=name), id(second): second.compress(data, name=name)}
            r_on, r_off = res[id(on)], res[id(off)]
            rounds.append({"with": r_on.seconds["total"], "without": r_off.seconds["total"],
                           "render": r_on.seconds.get("render", 0.0), "psnr": r_on.fidelity.get("render_psnr")})
            print(f"round {i}: with {rounds[-1]['with']:.3f} s (render {rounds[-1]['render']:.3f}), "
                  f"without {rounds[-1]['without']:.3f} s", flush=True)
        device_name = on.device_name
    w = [r["with"] for r in rounds]
    wo = [r["without"] for r in rounds]
    diff = statistics.median(x - y for x, y in zip(w, wo))
    result = {"scene": name, "quality": a.quality, "device": device_name, "host": platform.node(),
              "rounds": rounds, "median_with": statistics.median(w), "median_without": statistics.median(wo),
              "best_with": min(w), "best_without": min(wo), "median_paired_difference": diff,
              "overhead_of_median": statistics.median(w) / statistics.median(wo) - 1.0}
    print(f"median with {result['median_with']:.3f} s, without {result['median_without']:.3f} s "
          f"({100 * result['overhead_of_median']:+.1f} %); best {min(w):.3f} / {min(wo):.3f} s; "
          f"median paired difference {diff:+.3f} s")
    write_result(result, a.json, "metric_cost.json")


if __name__ == "__main__":
    main()
