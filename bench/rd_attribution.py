"""Which attribute costs the render quality? For each scene, our SOG and splat-transform's are
decoded, and the input is rendered with ONE attribute group swapped for a file's decoded values
(means, quats, log_scales, f_dc, opacity, f_rest), scored by our render metric against the input.

    python bench/rd_attribution.py [--scenes leica_sh3 donut ...] [--views 4] [--size 256]
        [--splat-transform BIN] [--work DIR] [--json out.json]

A decoded splat is matched to its input splat by nearest position (both files keep every splat;
positions are within half a 16-bit step). The swap of one group isolates what that group's
quantization costs in the picture; the sum of the losses is not the whole loss (they interact),
so the whole decoded file is scored too. JSON: default bench/results/rd_attribution.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch
from scipy.spatial import cKDTree

from bench.results_io import write_result
from sogs_core.formats import read_splats
from sogs_core.model.splats import ATTRIBUTES
from sogs_core.pipeline.compressor import Compressor
from sogs_core.render.score import RenderMetricSettings, render_fidelity

SCENES = {
    "biker": "real/biker.compressed.ply",
    "guitar": "real/guitar.compressed.ply",
    "logo_v1": "sog_refs/playcanvas-logo_v1/meta.json",
    "leica_sh3": "real_float/leica-sofort-top8192.ply",
    "donut": "real_float/donut-mipsplat.ply",
}
DEFAULT_ST = os.path.join(ROOT, ".cache", "splat-transform-3.10.2", "node_modules", ".bin", "splat-transform")


def matched(original, decoded):
    """`decoded`'s splats reordered to `original`'s order (nearest decoded position per input)."""
    _, idx = cKDTree(decoded.means.astype(np.float64)).query(original.means.astype(np.float64))
    return decoded.take(idx)


def swap(original, donor, attr):
    return dataclasses.replace(original, **{attr: getattr(donor, attr)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", nargs="+", default=["leica_sh3", "donut"], choices=sorted(SCENES))
    ap.add_argument("--scenes-root", default=os.path.join(ROOT, "..", "shared", "scenes"))
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--splat-transform", default=DEFAULT_ST)
    ap.add_argument("--work", default=os.path.join(ROOT, ".cache", "rd_attribution"))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    settings = RenderMetricSettings(views=args.views, width=args.size, height=args.size)
    result = {"views": args.views, "size": args.size, "splat_transform": args.splat_transform, "scenes": []}
    comp = Compressor(device="cpu")
    for name in args.scenes:
        src = os.path.join(args.scenes_root, SCENES[name])
        original = read_splats(src)
        files = {"ours": os.path.join(args.work, f"{name}_ours.sog"),
                 "theirs": os.path.join(args.work, f"{name}_theirs.sog")}
        t0 = time.perf_counter()
        comp.compress(src, files["ours"])
        t1 = time.perf_counter()
        subprocess.run([args.splat_transform, "-q", "-w", "-g", "cpu", src, files["theirs"]], check=True,
                       capture_output=True, timeout=3600)
        t2 = time.perf_counter()
        row = {"scene": name, "count": len(original.means), "sh_coeffs": original.f_rest.shape[1] // 3,
               "seconds": {"ours": t1 - t0, "theirs": t2 - t1}}
        for who, path in files.items():
            dec = matched(original, read_splats(path))
            per = {"bytes": os.path.getsize(path),
                   "whole": render_fidelity(original, dec, settings)["render_psnr"]}
            for attr in ATTRIBUTES:
                if attr == "f_rest" and original.f_rest.shape[1] == 0:
                    continue
                per[attr] = render_fidelity(original, swap(original, dec, attr), settings)["render_psnr"]
            row[who] = per
        result["scenes"].append(row)
        cols = ["bytes", "whole"] + [a for a in ATTRIBUTES if a in row["ours"]]
        print(f"{name} ({row['count']} splats)")
        print("  " + " ".join(f"{c:>11}" for c in ["file"] + cols))
        for who in files:
            print("  " + " ".join([f"{who:>11}"] + [f"{row[who][c]:>11.2f}" if c != "bytes" else
                                                     f"{row[who][c]:>11d}" for c in cols]))
        write_result(result, args.json, "rd_attribution.json")


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    main()
