"""One huge scene as a streamed SOG through the Ray backfill on one GPU, its chunk groups spread
over 1, 2 or 4 actors sharing that GPU (`--gpus-per-actor`): wall seconds, the scene's row
seconds, the GPU memory nvidia-smi shows (all actors together), bytes.

    python bench/streamed_actors.py --millions 32 --sh 3 --shares 1 0.25 [--groups-per-call 1 8]
        [--work /tmp/streamed_actors] [--json out.json]

The scene is `streamed_bench.write_big_ply`'s (the same PLY `streamed_timeline.py` writes), the
backfill runs local disk to local disk on a local Ray with one GPU, `--streamed-above 1000000
--force --no-report`, the defaults otherwise. Why: one process writes a streamed SOG with its
kernel launches bound by one interpreter (bench/NOTES.md, session 25); actors are processes.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from scaling_run import GpuSampler  # noqa: E402
from streamed_bench import write_big_ply  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--millions", type=float, default=32)
    ap.add_argument("--sh", type=int, default=3)
    ap.add_argument("--shares", type=float, nargs="+", default=[1.0, 0.25])
    ap.add_argument("--groups-per-call", type=int, nargs="+", default=[0],
                    help="backfill --groups-per-call values to run each share with (0: its default)")
    ap.add_argument("--work", default="/tmp/streamed_actors")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    n = int(a.millions * 1_000_000)
    inp = os.path.join(a.work, "in")
    os.makedirs(inp, exist_ok=True)
    ply = os.path.join(inp, f"synth_{n}_sh{a.sh}.ply")
    if not os.path.exists(ply):
        write_big_ply(ply, n, a.sh)

    import pyarrow.parquet as pq
    import ray

    from ray_jobs import backfill

    ray.init(num_gpus=1, include_dashboard=False, logging_level="WARNING")
    runs = []
    for share in a.shares:
        for per_call in a.groups_per_call:
            out = os.path.join(a.work, f"out_share{share:g}_calls{per_call}")
            sampler = GpuSampler(1)
            sampler.start()
            args = backfill.build_parser().parse_args(
                ["--input", inp, "--output", out, "--force", "--no-report", "--streamed-above", "1000000",
                 "--gpus-per-actor", str(share)] + (["--groups-per-call", str(per_call)] if per_call else []))
            t0 = time.monotonic()
            summary = backfill.run(args)
            wall = time.monotonic() - t0
            sampler.stop.set()
            rows = [r for r in pq.read_table(os.path.join(out, "_manifest")).to_pylist()
                    if r["run_id"] == summary["run_id"]]
            row = rows[0] if rows else {}
            mem = [row_[0][1] for _, row_ in sampler.samples if 0 in row_]
            util = [row_[0][0] for _, row_ in sampler.samples if 0 in row_]
            run = {"gpus_per_actor": share, "actors": int(round(1 / share)), "groups_per_call": per_call or None,
                   "status": row.get("status"), "wall_seconds": wall, "row_seconds_total": row.get("seconds_total"),
                   "output_bytes": row.get("output_bytes"), "error": row.get("error_message"),
                   "gpu_mem_max_mib": max(mem, default=None),
                   "gpu_util_mean_pct": sum(util) / len(util) if util else None}
            print(json.dumps(run), flush=True)
            runs.append(run)
    ray.shutdown()
    result = {"splats": n, "sh": a.sh, "runs": runs}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
