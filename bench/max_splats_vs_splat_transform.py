"""`--max-splats P%` against splat-transform's `-d P%` on the same scenes: bytes, render PSNR
against the full scene, seconds.

    python bench/max_splats_vs_splat_transform.py SCENE.ply ... [--percent 50] [--repeat 1]
        [--splat-transform PATH] [--json out.json]

Ours: one command, `sogs-cluster compress --max-splats P% --device cpu` (the default level), a
fresh process. Theirs: `-d` writes only a PLY, so two commands, `in.ply -d P% half.ply` then
`half.ply half.sog` (`-g cpu`), seconds summed. Both SOGs are decoded and rendered by our
rasterizer against the full input (4 views at 256 x 256, `render.score`); the merge alone (no
SOG) is scored too: ours through `edit.budget.reduce_to`, theirs from their PLY. JSON: default
bench/results/max_splats_vs_splat_transform.json.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.results_io import SPLAT_TRANSFORM, timed, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenes", nargs="+")
    ap.add_argument("--percent", type=float, default=50.0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--splat-transform", default=SPLAT_TRANSFORM)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if not os.path.exists(a.splat_transform):
        ap.error(f"{a.splat_transform} not found (npm install @playcanvas/splat-transform@3.10.2 into .cache/)")
    import torch

    from sogs_core.edit.budget import reduce_to
    from sogs_core.formats import read_splats
    from sogs_core.render.score import RenderMetricSettings, render_fidelity

    metric = RenderMetricSettings(views=4, width=256, height=256)
    pct = f"{a.percent:g}%"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in a.scenes:
            full = read_splats(path)
            ours_sog, st_ply, st_sog = (os.path.join(tmp, n) for n in ("ours.sog", "st_half.ply", "st_half.sog"))
            ours_cmd = [sys.executable, "-m", "sogs_cli.main", "compress", "-q", "--device", "cpu",
                        "--max-splats", pct, path, ours_sog]
            st_d = [a.splat_transform, "-q", "-w", "-g", "cpu", path, "-d", pct, st_ply]
            st_w = [a.splat_transform, "-q", "-w", "-g", "cpu", st_ply, st_sog]
            t_ours, t_st = [], []
            for _ in range(a.repeat):
                t_ours.append(timed(ours_cmd))
                t_st.append(timed(st_d) + timed(st_w))
            ours_dec, st_half, st_dec = read_splats(ours_sog), read_splats(st_ply), read_splats(st_sog)
            merged = reduce_to(full, ours_dec.count, torch.device("cpu"))
            row = {"scene": os.path.basename(path), "splats": full.count, "percent": a.percent,
                   "ours_splats": ours_dec.count, "splat_transform_splats": st_dec.count,
                   "ours_bytes": os.path.getsize(ours_sog), "splat_transform_bytes": os.path.getsize(st_sog),
                   "ours_seconds": min(t_ours), "splat_transform_seconds": min(t_st),
                   "ours_psnr": render_fidelity(full, ours_dec, metric)["render_psnr"],
                   "splat_transform_psnr": render_fidelity(full, st_dec, metric)["render_psnr"],
                   "ours_merge_only_psnr": render_fidelity(full, merged, metric)["render_psnr"],
                   "splat_transform_merge_only_psnr": render_fidelity(full, st_half, metric)["render_psnr"]}
            rows.append(row)
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    write_result({"host": platform.node(), "metric": "sogs-raster 4 views 256x256, against the full input",
                  "rows": rows}, a.json, "max_splats_vs_splat_transform.json")


if __name__ == "__main__":
    main()
