"""How should the scale and colour codebooks weigh each splat? Compresses each scene with several
weightings of `kmeans_1d` (density exponent, and an importance per splat: (opacity^2 x area)^g,
area = the product of its two largest scales, what its error shows in a picture) and scores each
output with our render metric against the input.

    python bench/codebook_weights.py [--scenes leica_sh3 donut ...] [--variants base imp0.5 ...]
        [--views 4] [--size 256] [--json out.json]

Research bench: it swaps the compressor's `quantize_splats` for a variant in this process only.
JSON: default bench/results/codebook_weights.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from unittest.mock import patch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch

from bench.rd_attribution import SCENES
from bench.results_io import write_result
from sogs_core.formats import read_splats
from sogs_core.pipeline.compressor import Compressor
from sogs_core.pipeline import compressor as compressor_mod
from sogs_core.quantize import scene as quantize_scene
from sogs_core.quantize.codebook import kmeans_1d
from sogs_core.render.score import RenderMetricSettings, render_fidelity


def importance(log_scales: torch.Tensor, opacity: torch.Tensor, g: float) -> torch.Tensor:
    """(opacity^2 x area)^g per splat, area = exp(sum of the two largest log-scales)."""
    top2 = torch.topk(log_scales.float(), 2, dim=1).values.sum(1)
    a = torch.sigmoid(opacity.float())
    return torch.exp(g * (2 * torch.log(a.clamp_min(1e-6)) + top2))


def variant(scale_alpha: float, dc_alpha: float, g_scale: float | None, g_dc: float | None):
    """`quantize_splats` whose two codebook fits (scales first, then colours) take these density
    exponents and importance exponents (None: no importance) instead of the library's."""
    def quantize(means, quats, log_scales, f_dc, opacity, quality=100):
        calls = iter([(scale_alpha, g_scale), (dc_alpha, g_dc)])

        def fit(values, *args, density_alpha=None, importance=None, **kw):
            alpha, g = next(calls)
            weight = None if g is None else globals()["importance"](log_scales, opacity, g)[:, None].expand_as(values)
            return kmeans_1d(values, *args, density_alpha=alpha, importance=weight, **kw)

        with patch.object(quantize_scene, "kmeans_1d", fit):
            return quantize_scene.quantize_splats(means, quats, log_scales, f_dc, opacity, quality)
    return quantize


VARIANTS = {
    "base": None,
    "plain": (1.0, 1.0, None, None),
    "imp0.25": (0.25, 0.25, 0.25, 0.25),
    "imp0.5": (0.25, 0.25, 0.5, 0.5),
    "imp0.75": (0.25, 0.25, 0.75, 0.75),
    "imp1": (0.25, 0.25, 1.0, 1.0),
    "imp0.5_scales": (0.25, 0.25, 0.5, None),
    "imp0.5_dc": (0.25, 0.25, None, 0.5),
    "imp0.5_a1": (1.0, 1.0, 0.5, 0.5),
    "imp0.25_a1": (1.0, 1.0, 0.25, 0.25),
    "imp0.5_a.5": (0.5, 0.5, 0.5, 0.5),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", nargs="+", default=["leica_sh3", "donut"], choices=sorted(SCENES))
    ap.add_argument("--scenes-root", default=os.path.join(ROOT, "..", "shared", "scenes"))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    settings = RenderMetricSettings(views=args.views, width=args.size, height=args.size)
    original_fn = compressor_mod.quantize_splats
    result = {"views": args.views, "size": args.size, "variants": {k: VARIANTS[k] for k in args.variants},
              "scenes": {}}
    for name in args.scenes:
        src = os.path.join(args.scenes_root, SCENES[name])
        original = read_splats(src)
        rows = {}
        for v in args.variants:
            compressor_mod.quantize_splats = original_fn if VARIANTS[v] is None else variant(*VARIANTS[v])
            comp = Compressor(device="cpu")
            t0 = time.perf_counter()
            data = comp.compress(src, with_fidelity=False).package.bundle_bytes()
            sec = time.perf_counter() - t0
            score = render_fidelity(original, read_splats(data, "out.sog"), settings)
            rows[v] = {"bytes": len(data), "psnr": score["render_psnr"], "ssim": score["render_ssim"],
                       "seconds": sec}
            print(f"{name:10s} {v:12s} {rows[v]['bytes']:>10,d} B  {rows[v]['psnr']:6.2f} dB  "
                  f"{rows[v]['ssim']:.5f}  {sec:5.2f} s", flush=True)
        result["scenes"][name] = rows
        write_result(result, args.json, "codebook_weights.json")
    compressor_mod.quantize_splats = original_fn


if __name__ == "__main__":
    main()
