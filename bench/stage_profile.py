"""Where one compress spends its time, below the stage table: each inner step timed with the
device synchronised around it, and every WebP encode's start and end on the wall clock.

    python bench/stage_profile.py scene.ply [--device auto] [--repeat 3] [--quality 80] [--json out.json]

Why a separate tool: `compress_bench.py` reports the stages a user sees; to cut a stage we need
the steps inside it (a sync around each step costs a little overlap, so the sum runs a few
percent above the plain bench's total). The last (warm) run is reported.
"""
from __future__ import annotations

import functools
import os
import platform
import sys
import threading
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from results_io import scene_arguments, write_result  # noqa: E402  (bench/ is the script's own folder)

import torch  # noqa: E402

from sogs_core.pipeline import compressor as comp_mod  # noqa: E402
from sogs_core import order as order_mod  # noqa: E402
from sogs_core.pipeline import palette_aside as aside_mod  # noqa: E402
from sogs_core.quantize import scene as quant_mod  # noqa: E402
from sogs_core.pipeline.compressor import Compressor  # noqa: E402
from sogs_core.settings import CompressSettings  # noqa: E402

#: (module, function name) pairs timed as steps; the names must be looked up where they are called
STEPS = [
    (comp_mod, "read_scene"), (comp_mod, "quantize_splats"), (comp_mod, "order_scene"),
    (comp_mod, "build_images"), (comp_mod, "with_palette"), (comp_mod, "number_palette"),
    (comp_mod, "fidelity_tensors"), (comp_mod, "dequantize_tensors"),
    (quant_mod, "encode_means"), (quant_mod, "kmeans_1d"), (quant_mod, "encode_quats"),
    (quant_mod, "encode_opacity"), (comp_mod, "smallest_by_sample"),
    (order_mod, "chain_orders"), (comp_mod, "apply_order"),
]
#: steps that run on a thread of their own beside the others: timed as spans, not synchronised
SPANS = [(aside_mod, "fit_palette")]


class Recorder:
    """Accumulates synchronised step times (main thread) and WebP encode intervals (any thread)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.steps: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.encodes: list[dict] = []
        self.spans: list[dict] = []
        self.lock = threading.Lock()
        self.t0 = time.perf_counter()

    def sync(self) -> None:
        """Wait for this thread's stream only (the palette's k-means runs on another)."""
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()

    def step(self, name: str, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            self.sync()
            a = time.perf_counter()
            out = fn(*args, **kwargs)
            self.sync()
            self.steps[name] += time.perf_counter() - a
            self.calls[name] += 1
            return out
        return wrapper

    def span(self, name: str, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            a = time.perf_counter()
            out = fn(*args, **kwargs)
            b = time.perf_counter()
            with self.lock:
                self.spans.append({"name": name, "start": a - self.t0, "end": b - self.t0})
            return out
        return wrapper

    def webp(self, fn):
        @functools.wraps(fn)
        def wrapper(img, *args, **kwargs):
            name = kwargs.get("name", args[1] if len(args) > 1 else "")
            a = time.perf_counter()
            out = fn(img, *args, **kwargs)
            b = time.perf_counter()
            with self.lock:
                self.encodes.append({"name": name, "start": a - self.t0, "end": b - self.t0,
                                     "texels": int(img.shape[0] * img.shape[1]), "bytes": len(out)})
            return out
        return wrapper

    def reset(self) -> None:
        self.steps.clear()
        self.calls.clear()
        self.encodes.clear()
        self.spans.clear()
        self.t0 = time.perf_counter()


def main() -> None:
    a = scene_arguments(__doc__, extra=lambda ap: ap.add_argument(
        "--quality", type=int, default=80, help="--quality level (default 80, the CLI's)"))
    comp = Compressor(device=a.device, settings=CompressSettings(quality=a.quality))
    rec = Recorder(comp.device)
    for mod, name in STEPS:
        setattr(mod, name, rec.step(name, getattr(mod, name)))
    for mod, name in SPANS:
        setattr(mod, name, rec.span(name, getattr(mod, name)))
    comp_mod.encode_webp = rec.webp(comp_mod.encode_webp)
    with open(a.ply, "rb") as f:
        data = f.read()
    for i in range(a.repeat):
        rec.reset()
        res = comp.compress(data, None, name=os.path.basename(a.ply), with_fidelity=True)
        print(f"run {i}: total {res.seconds['total']:.3f}", flush=True)
    print(f"\n{'step':<20}{'calls':>6}{'seconds':>10}")
    for k, v in sorted(rec.steps.items(), key=lambda kv: -kv[1]):
        print(f"{k:<20}{rec.calls[k]:>6}{v:>10.3f}")
    print(f"\n{'span / image':<22}{'start':>8}{'end':>8}{'secs':>8}{'bytes':>12}")
    for e in sorted(rec.encodes + rec.spans, key=lambda e: e["start"]):
        print(f"{e['name']:<22}{e['start']:>8.3f}{e['end']:>8.3f}{e['end'] - e['start']:>8.3f}{e.get('bytes', 0):>12,}")
    print("stages: " + "  ".join(f"{k} {v:.3f}" for k, v in res.seconds.items()))
    result = {"input": a.ply, "quality": a.quality, "count": res.count, "device": comp.device_name, "host": platform.node(),
              "stages": res.seconds, "steps": dict(rec.steps), "calls": dict(rec.calls), "encodes": rec.encodes, "spans": rec.spans}
    write_result(result, a.json, f"profile_{os.path.splitext(os.path.basename(a.ply))[0]}.json")
    comp.close()


if __name__ == "__main__":
    main()
