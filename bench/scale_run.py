"""The driver, scheduler, manifest, leases and report at bucket scale, the compression replaced by
a stand-in actor: plan seconds and peak RSS, rows settled per minute, manifest objects, resume,
report.

    python bench/scale_run.py [--scenes 1000000] [--settle 20000] [--actors 100] [--delay 0]
                              [--work /tmp/scale_run] [--json out.json]

1. A local tree of --scenes symbolic links (1,000 per folder) to one small PLY, and a dry run of
   the backfill over it (a fresh process: wall seconds, peak RSS).
2. --settle of them through the real driver (`backfill.run`, in a fresh process), with
   `ray_jobs.actors.SceneCompressor` replaced by `StandIn` (this file only; no option of the CLI
   reaches it): --actors Ray actors on fake CPUs that each answer a scene after --delay seconds
   with a row as the real actor makes it (a few-byte output written, the row made durable beside
   the manifest). Rows settled per minute, peak RSS, manifest objects after the run.
3. Resume: the manifest filled up to --scenes ok rows (parts of 5,000 rows, as compaction writes
   them) with outputs present, then a dry run again: everything skipped; seconds and peak RSS.
4. The report over every row (`sogs-cluster report --all`): seconds and bytes.
JSON: default bench/results/scale_run.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

class StandIn:
    """Answers `process` as `SceneCompressor` does (a row, the output written, the row durable),
    after `delay` seconds, without compressing anything. Defined here, so Ray ships it by value."""

    delay = 0.0

    def __init__(self, device, settings, layout, run_id, settings_hash, max_retries, s3_retry_seconds=120.0,
                 render_metric=False, manifest=None, min_psnr=None, max_scene_splats=None) -> None:
        import itertools

        from ray_jobs.storage import Store

        self.run_id, self.settings_hash, self.manifest = run_id, settings_hash, manifest
        self.store = Store()
        self.seq = itertools.count()
        self.tag = f"{os.getpid()}-{os.urandom(3).hex()}"

    def ready(self) -> str:
        return f"stand-in {os.getpid()}"

    def process(self, task: dict, attempt_offset: int = 0) -> dict:
        from ray_jobs.manifest import actor_row_uri, ok_row, rows_object, task_row, utcnow

        time.sleep(self.delay)
        row = task_row(task, self.run_id, self.settings_hash, node="stand-in", gpu="none", started_at=utcnow())
        self.store.put(task["output_uri"], b"SOG stand-in")
        ok_row(row, {"total": self.delay}, {}, splats=1, output_bytes=12, input_format="ply", sh_degree=0,
               ratio=1.0, attempts=attempt_offset + 1, finished_at=utcnow())
        if self.manifest:
            uri = actor_row_uri(self.manifest, self.run_id, self.tag, next(self.seq))
            self.store.put(uri, rows_object([row]))
            row["journal_uri"] = uri
        return row


def settle_phase(a: argparse.Namespace) -> None:
    """In its own process: the real driver over --settle scenes with StandIn actors."""
    import ray

    import ray_jobs.actors
    from ray_jobs import backfill

    StandIn.delay = a.delay
    ray_jobs.actors.SceneCompressor = StandIn
    ray.init(num_cpus=a.actors + 4, num_gpus=0, include_dashboard=False, logging_level="ERROR",
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    args = backfill.build_parser().parse_args(
        ["--input", os.path.join(a.work, "in"), "--output", os.path.join(a.work, "out"), "--device", "cpu",
         "--actors", str(a.actors), "--limit", str(a.settle), "--no-report", "--max-retries", "0"])
    t0 = time.perf_counter()
    summary = backfill.run(args)
    print(json.dumps({"summary": {k: v for k, v in summary.items() if k != "manifest_parts"},
                      "seconds": time.perf_counter() - t0}))


def build_tree(root: str, n: int) -> float:
    from sogs_core.formats.ply.write import ply_bytes
    from sogs_core.model.synth import synthetic_scene

    t0 = time.perf_counter()
    target = os.path.join(root, "scene.ply")
    with open(target, "wb") as f:
        f.write(ply_bytes(synthetic_scene(64, 0, seed=1)))
    inputs = os.path.join(root, "in")
    for d in range(0, n, 1000):
        folder = os.path.join(inputs, f"d{d // 1000:04d}")
        os.makedirs(folder, exist_ok=True)
        for i in range(d, min(n, d + 1000)):
            os.symlink(target, os.path.join(folder, f"s{i:07d}.ply"))
    return time.perf_counter() - t0


def fill_manifest(root: str, n: int, shash: str) -> float:
    """Every listed scene done: its output present and an ok row in parts of 5,000 rows."""
    import datetime as dt

    from ray_jobs.manifest import empty_row, rows_object
    from ray_jobs.storage import Store

    t0 = time.perf_counter()
    store = Store()
    inputs, out = os.path.join(root, "in"), os.path.join(root, "out")
    manifest = os.path.join(out, "_manifest")
    objs = store.list(inputs)
    now = dt.datetime.now(dt.timezone.utc)
    batch, part = [], 0
    for o in objs:
        output = os.path.join(out, o.rel[:-4] + ".sog")
        if not os.path.exists(output):
            os.makedirs(os.path.dirname(output), exist_ok=True)
            with open(output, "wb") as f:
                f.write(b"SOG stand-in")
        row = empty_row()
        row.update(run_id="filled", input_uri=o.uri, input_bytes=o.size, input_etag=o.etag, input_format="ply",
                   output_uri=output, splats=1, status="ok", settings_hash=shash, started_at=now, finished_at=now)
        batch.append(row)
        if len(batch) == 5000:
            store.put(os.path.join(manifest, f"run-filled-part-{part:05d}.parquet"), rows_object(batch))
            batch, part = [], part + 1
    if batch:
        store.put(os.path.join(manifest, f"run-filled-part-{part:05d}.parquet"), rows_object(batch))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=1_000_000)
    ap.add_argument("--settle", type=int, default=20_000)
    ap.add_argument("--actors", type=int, default=100)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--work", default="/tmp/scale_run")
    ap.add_argument("--json", default=None)
    ap.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.phase == "settle":
        settle_phase(a)
        return
    from bench.results_io import measured, write_result

    env = dict(os.environ, PYTHONPATH=ROOT, RAY_AUTH_MODE="disabled", OMP_NUM_THREADS="1", RAY_DEDUP_LOGS="0")
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    result: dict = {"host": platform.node(), "scenes": a.scenes, "settle": a.settle, "actors": a.actors,
                    "delay": a.delay}
    result["tree_seconds"] = round(build_tree(a.work, a.scenes), 1)
    print(f"tree of {a.scenes:,} links in {result['tree_seconds']} s", flush=True)
    backfill = [sys.executable, "-m", "ray_jobs.backfill", "--input", os.path.join(a.work, "in"),
                "--output", os.path.join(a.work, "out"), "--device", "cpu"]
    result["plan"] = measured(backfill + ["--dry-run"], env)
    print(f"plan (dry run): {result['plan']['seconds']} s, peak {result['plan']['peak_rss_mb']} MB", flush=True)
    settle = measured([sys.executable, os.path.abspath(__file__), "--phase", "settle", "--work", a.work,
                       "--settle", str(a.settle), "--actors", str(a.actors), "--delay", str(a.delay)], env)
    result["settle"] = settle
    manifest = os.path.join(a.work, "out", "_manifest")
    result["manifest_objects_after_settle"] = len(os.listdir(manifest)) if os.path.isdir(manifest) else 0
    print(f"settle {a.settle:,} with {a.actors} stand-ins: {settle['seconds']} s "
          f"({a.settle / settle['seconds'] * 60:,.0f} rows/min incl. start), peak {settle['peak_rss_mb']} MB, "
          f"{result['manifest_objects_after_settle']} manifest objects", flush=True)
    from ray_jobs.backfill import build_parser, settings_hash

    shash = settings_hash(build_parser().parse_args(backfill[3:]))
    result["fill_seconds"] = round(fill_manifest(a.work, a.scenes, shash), 1)
    result["resume"] = measured(backfill + ["--dry-run"], env)
    print(f"resume over {a.scenes:,} done scenes: {result['resume']['seconds']} s, "
          f"peak {result['resume']['peak_rss_mb']} MB", flush=True)
    report = os.path.join(a.work, "report.html")
    result["report"] = measured([sys.executable, "-m", "sogs_cli.main", "report", manifest, "-o", report, "--all"], env)
    result["report"]["bytes"] = os.path.getsize(report) if os.path.exists(report) else None
    print(f"report over every row: {result['report']['seconds']} s, {result['report']['bytes']} bytes, "
          f"peak {result['report']['peak_rss_mb']} MB", flush=True)
    write_result(result, a.json, "scale_run.json")


if __name__ == "__main__":
    main()
