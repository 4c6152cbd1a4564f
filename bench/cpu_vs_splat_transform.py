"""Our `compress` against @playcanvas/splat-transform (`-g cpu`) on the same CPU, same run.

    python bench/cpu_vs_splat_transform.py biker.ply guitar.ply [--repeat 2] [--sh-bands 0]
        [--splat-transform PATH] [--json out.json]

Each tool runs as a user runs it (a fresh process per scene, wall clock, process start
included), alternating, best of --repeat; bytes of each output. splat-transform defaults to the
copy the tests install (.cache/splat-transform-3.10.2, `bench/results_io.SPLAT_TRANSFORM`). `--sh-bands 0` drops SH on both sides
(`-H 0` for splat-transform, whose CPU k-means takes very long on SH scenes). JSON: default
bench/results/cpu_vs_splat_transform.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.results_io import SPLAT_TRANSFORM, timed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenes", nargs="+", help="3DGS PLY files")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--sh-bands", type=int, choices=[0, 1, 2, 3], default=None)
    ap.add_argument("--splat-transform", default=SPLAT_TRANSFORM)
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "cpu_vs_splat_transform.json"))
    a = ap.parse_args()
    if not os.path.exists(a.splat_transform):
        ap.error(f"{a.splat_transform} not found (the tests install it; or npm install @playcanvas/splat-transform)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in a.scenes:
            name = os.path.basename(path)
            ours_out, st_out = os.path.join(tmp, "ours.sog"), os.path.join(tmp, "st.sog")
            ours = [sys.executable, "-m", "sogs_cli.main", "compress", "-q", "--device", "cpu", path, ours_out]
            st = [a.splat_transform, "-q", "-w", "-g", "cpu", path, st_out]
            if a.sh_bands is not None:
                ours[4:4] = ["--sh-bands", str(a.sh_bands)]
                st[6:6] = ["-H", str(a.sh_bands)]                  # an action: after the input
            t_ours, t_st = [], []
            for _ in range(a.repeat):
                t_ours.append(timed(ours))
                t_st.append(timed(st))
            row = {"scene": name, "ours_seconds": min(t_ours), "splat_transform_seconds": min(t_st),
                   "ours_bytes": os.path.getsize(ours_out), "splat_transform_bytes": os.path.getsize(st_out),
                   "ours_all": t_ours, "splat_transform_all": t_st}
            rows.append(row)
            print(f"{name:<24} ours {row['ours_seconds']:6.2f} s {row['ours_bytes']:>11,} B   "
                  f"splat-transform {row['splat_transform_seconds']:6.2f} s {row['splat_transform_bytes']:>11,} B",
                  flush=True)
    result = {"host": platform.node(), "cpus": os.cpu_count(), "sh_bands": a.sh_bands, "scenes": rows}
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
