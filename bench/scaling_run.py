"""Backfill throughput on k GPUs of one host: scenes per minute, GPU busy fraction, stage times.

    python bench/scaling_run.py --scenes 8 --gpus 1 [--n 1048576] [--work /tmp/scaling] [--json out.json]

Generates the synthetic scenes (../shared/bench/synth_scene.py, seeds 0..S-1, SH3) once into
WORK/in, runs one backfill (local Ray limited to the first k GPUs, local disk to local disk,
default settings, --force), samples `nvidia-smi` utilisation every 0.5 s while it runs, then
reads the manifest. Besides the whole run (actor start and warm-up included) it reports the
steady state: the window from the first scene's start to the last scene's end in the manifest,
its scenes per minute and the GPU samples inside it (`mean_util_pct`: nvidia-smi's percentage of
time a kernel ran; `busy_fraction`: the share of samples with any kernel). Repeat with --gpus 1,
2, 4, 8 and compare; efficiency(k) = rate(k) / (k x rate(1)).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def find_synth() -> str:
    for cand in (os.path.join(ROOT, "..", "shared", "bench"), os.path.join(ROOT, "shared_carry", "bench")):
        if os.path.isfile(os.path.join(cand, "synth_scene.py")):
            return os.path.join(cand, "synth_scene.py")
    raise SystemExit("synth_scene.py not found beside the checkout (../shared/bench)")


class GpuSampler(threading.Thread):
    def __init__(self, gpus: int) -> None:
        super().__init__(daemon=True)
        self.gpus, self.samples, self.stop = gpus, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=index,utilization.gpu,memory.used",
                                      "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5).stdout
                row = {}
                for line in out.strip().splitlines():
                    i, u, m = [x.strip() for x in line.split(",")]
                    if int(i) < self.gpus:
                        row[int(i)] = (float(u), float(m))
                self.samples.append((time.time(), row))
            except Exception:
                pass
            time.sleep(0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--gpus", type=int, default=1)
    ap.add_argument("--n", type=int, default=1048576)
    ap.add_argument("--work", default="/tmp/scaling")
    ap.add_argument("--gpus-per-actor", type=float, default=None,
                    help="the backfill's GPU share per actor (default: the backfill's default, 1)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    inp = os.path.join(a.work, "in")
    os.makedirs(inp, exist_ok=True)
    synth = find_synth()
    t0 = time.monotonic()

    def make(seed: int) -> None:
        path = os.path.join(inp, f"scene_{seed:03d}.ply")
        if not os.path.exists(path):
            subprocess.run([sys.executable, synth, "--n", str(a.n), "--sh", "3", "--seed", str(seed),
                            "--out", path + ".part"], check=True, stdout=subprocess.DEVNULL)
            os.replace(path + ".part", path)

    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max(1, min(a.scenes, (os.cpu_count() or 2) // 2))) as pool:
        list(pool.map(make, range(a.scenes)))
    print(f"scenes ready in {time.monotonic() - t0:.1f}s", flush=True)

    import ray
    import pyarrow.parquet as pq

    from ray_jobs import backfill

    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(a.gpus))
    ray.init(num_gpus=a.gpus, include_dashboard=False, logging_level="WARNING")
    share = "" if a.gpus_per_actor is None else f"_share{a.gpus_per_actor:g}"
    out = os.path.join(a.work, f"out_{a.gpus}gpu{share}")
    sampler = GpuSampler(a.gpus)
    sampler.start()
    extra = [] if a.gpus_per_actor is None else ["--gpus-per-actor", str(a.gpus_per_actor)]
    args = backfill.build_parser().parse_args(["--input", inp, "--output", out, "--force"] + extra)
    t1 = time.monotonic()
    summary = backfill.run(args)
    wall = time.monotonic() - t1
    sampler.stop.set()
    ray.shutdown()
    rows = [r for r in pq.read_table(os.path.join(out, "_manifest")).to_pylist() if r["run_id"] == summary["run_id"]]
    stages = ("read", "sort", "cluster", "quantize", "encode", "write", "total")
    ok_rows = [r for r in rows if r["status"] == "ok"]
    mean = {s: sum(r[f"seconds_{s}"] for r in ok_rows) / max(1, summary["ok"]) for s in stages}
    first = min(r["started_at"].timestamp() for r in ok_rows) if ok_rows else 0.0
    last = max(r["finished_at"].timestamp() for r in ok_rows) if ok_rows else 0.0

    def gpu_stats(lo: float, hi: float) -> dict:
        out = {}
        for g in range(a.gpus):
            inside = [row[g] for t, row in sampler.samples if g in row and lo <= t <= hi]
            vals = [u for u, _ in inside]
            out[g] = {"mean_util_pct": sum(vals) / len(vals) if vals else None,
                      "busy_fraction": sum(v > 0 for v in vals) / len(vals) if vals else None,
                      "max_mem_mib": max((m for _, m in inside), default=None)}
        return out

    result = {"gpus": a.gpus, "gpus_per_actor": a.gpus_per_actor or 1.0, "scenes": a.scenes, "n": a.n, "ok": summary["ok"], "failed": summary["failed"],
              "wall_seconds": wall, "scenes_per_minute": summary["ok"] / wall * 60, "stage_mean_seconds": mean,
              "gpu": gpu_stats(float("-inf"), float("inf")),
              "steady": {"seconds": last - first, "scenes_per_minute": len(ok_rows) / max(last - first, 1e-9) * 60,
                         "gpu": gpu_stats(first, last)},
              "gpu_names": sorted({r["gpu"] for r in rows})}
    print(json.dumps(result, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
