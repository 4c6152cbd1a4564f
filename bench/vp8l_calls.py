"""Torch calls our VP8L encoder makes for one image, by encoder function (a torch function mode
counts every call, on any device): on a GPU each is about one kernel launch, and a streamed
SOG's processes are bound by the Python that launches them (bench/NOTES.md, session 42).

    python bench/vp8l_calls.py [--side 736] [--device cpu] [--json out.json]

The image is label-like (a palette index per texel, locally coherent, with 30 % noise), encoded
with the SH labels' settings and with the default ones (the predictor), as a streamed SOG's
540k-splat files have them.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from results_io import write_result  # noqa: E402  (bench/ is the script's own folder)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.overrides import TorchFunctionMode  # noqa: E402

from sogs_core.settings import Vp8lSettings  # noqa: E402
from sogs_core.webp.vp8l import encode_lossless  # noqa: E402


class CallCounter(TorchFunctionMode):
    """Every torch call, counted once for each encoder function on the stack above it."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.by_function: collections.Counter = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.total += 1
        frame, seen = sys._getframe(1), set()
        while frame is not None:
            if "sogs_core/webp" in frame.f_code.co_filename:
                seen.add(frame.f_code.co_name)
            frame = frame.f_back
        self.by_function.update(seen)
        return func(*args, **(kwargs or {}))


def label_image(side: int, seed: int = 0) -> np.ndarray:
    """(side, side, 4) uint8: 12-bit labels in red and green, locally coherent, 30 % noise."""
    rng = np.random.default_rng(seed)
    lab = (np.cumsum(rng.integers(0, 3, side * side)) % 4096).astype(np.int64)
    noise = rng.random(side * side) < 0.3
    lab[noise] = rng.integers(0, 4096, int(noise.sum()))
    img = np.zeros((side, side, 4), np.uint8)
    img[..., 0] = (lab & 255).reshape(side, side)
    img[..., 1] = (lab >> 8).reshape(side, side)
    img[..., 3] = 255
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", type=int, default=736, help="texels a side (736: a 540k-splat file's images)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    img = torch.from_numpy(label_image(a.side))
    results = []
    for label, settings in (("labels", Vp8lSettings(predictor=False, max_groups=16)), ("default", Vp8lSettings())):
        counter = CallCounter()
        t0 = time.perf_counter()
        with counter, torch.no_grad():
            data = encode_lossless(img, torch.device(a.device), settings)
        seconds = time.perf_counter() - t0
        print(f"{label}: {len(data):,} bytes, {counter.total:,} torch calls, {seconds:.2f} s")
        for name, n in counter.by_function.most_common(a.top):
            print(f"   {n:6d}  {name}")
        results.append({"settings": label, "bytes": len(data), "torch_calls": counter.total, "seconds": seconds,
                        "by_function": dict(counter.by_function.most_common())})
    write_result({"side": a.side, "device": a.device, "images": results}, a.json, "vp8l_calls.json")


if __name__ == "__main__":
    main()
