"""Soak run of the backfill under faults: many small scenes through S3 with injected 503s and an
actor killed mid-run; every scene must end as exactly one row, all ok.

    python bench/soak_run.py [--scenes 300] [--fail-every 3] [--kill-after 30] [--actors 2] [--json out.json]

A moto S3 server on 127.0.0.1 behind the tests' fault proxy (every --fail-every-th request gets a
503 SlowDown), a local Ray head (CPU actors, --device cpu), the driver as its own process; after
--kill-after finished rows one actor's worker process is SIGKILLed. Reported: rows, duplicates,
ok/failed, attempts > 1, requests failed by the proxy, seconds, scenes per minute. JSON: default
bench/results/soak_run.json.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=300)
    ap.add_argument("--splats", type=int, default=1500)
    ap.add_argument("--fail-every", type=int, default=3)
    ap.add_argument("--kill-after", type=int, default=30, help="kill an actor after this many finished rows (0: never)")
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "soak_run.json"))
    a = ap.parse_args()

    import io

    import pyarrow.parquet as pq

    from ray_jobs.manifest import conform
    from sogs_core.formats.ply.write import ply_bytes
    from tests.conftest import make_scene
    from tests.ray_helpers import FaultProxy, MotoServer, fast_env, free_port
    from tests.test_faults import _actor_pids

    server = MotoServer()
    proxy = FaultProxy(server.url)
    client = server.client()
    bucket = "soak-bucket"
    client.create_bucket(Bucket=bucket)
    for i in range(a.scenes):
        client.put_object(Bucket=bucket, Key=f"in/{i // 50:02d}/scene_{i:04d}.ply",
                          Body=ply_bytes(make_scene(a.splats + i, 1, seed=1000 + i)))
    print(f"{a.scenes} scenes uploaded", file=sys.stderr)
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    s3_env = {**server.env, "AWS_ENDPOINT_URL": proxy.url}
    env = dict(os.environ, **fast_env(), **s3_env, PYTHONPATH=ROOT)
    port = free_port()
    temp = tempfile.mkdtemp(prefix="soak-ray-")
    subprocess.run([ray_bin, "start", "--head", f"--port={port}", f"--num-cpus={a.actors + 1}", "--num-gpus=0",
                    "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"],
                   env=env, check=True, capture_output=True)
    try:
        proxy.fail_every = a.fail_every
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "ray_jobs.backfill", "--input", f"s3://{bucket}/in/",
                                 "--output", f"s3://{bucket}/out/", "--device", "cpu", "--actors", str(a.actors)],
                                env=dict(env, RAY_ADDRESS=f"127.0.0.1:{port}"), cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        killed = 0
        if a.kill_after:
            while proc.poll() is None:
                listing = client.list_objects_v2(Bucket=bucket, Prefix="out/_manifest/")
                if len(listing.get("Contents", [])) >= a.kill_after:
                    pids = _actor_pids()
                    if pids:
                        os.kill(pids[0], signal.SIGKILL)
                        killed = 1
                    break
                time.sleep(0.5)
        out, err = proc.communicate()
        seconds = time.monotonic() - t0
        summary = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
        rows = []
        for obj in client.list_objects_v2(Bucket=bucket, Prefix="out/_manifest/").get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            rows += conform(pq.read_table(io.BytesIO(body))).to_pylist()
        rows = [r for r in rows if r["run_id"] == summary["run_id"]]
        uris = [r["input_uri"] for r in rows]
        result = {"scenes": a.scenes, "actors": a.actors, "fail_every": a.fail_every, "actor_killed": killed,
                  "rows_stored": len(rows), "distinct_scenes": len(set(uris)),
                  "ok": sum(r["status"] == "ok" for r in rows), "failed": sum(r["status"] == "failed" for r in rows),
                  "retried_scenes": sum((r["attempts"] or 0) > 1 for r in rows),
                  "requests": proxy.count, "requests_failed_by_proxy": proxy.failed,
                  "seconds": seconds, "scenes_per_minute": a.scenes / seconds * 60, "exit_code": proc.returncode,
                  "tracebacks_in_driver_log": err.count("Traceback")}
        print(json.dumps(result, indent=2))
        os.makedirs(os.path.dirname(a.json), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)
    finally:
        subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True)
        proxy.stop()
        server.stop()


if __name__ == "__main__":
    main()
