"""The backfill on real Ray clusters: `ray job submit` against a local head (token auth off, as
Ray documents for a local test cluster), two jobs at once sharing its GPUs, and a head with two
worker nodes (fake GPUs) over which scenes spread. Plus cluster.yaml through Ray's validator."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
import yaml

from .conftest import ROOT
from .ray_helpers import fast_env, free_port, scene_files, write_local

RAY = os.path.join(os.path.dirname(sys.executable), "ray")


def _env() -> dict:
    env = dict(os.environ, **fast_env())
    env["PYTHONPATH"] = ROOT
    # the job's `python` and the head's workers must be this interpreter (the venv's)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """`ray start --head` with two fake GPUs and the dashboard (job server) on loopback."""
    if not os.path.exists(RAY):
        pytest.fail(f"ray CLI not found beside {sys.executable}")
    dash, gcs = free_port(), free_port()
    temp = str(tmp_path_factory.mktemp("rayhead"))
    subprocess.run([RAY, "stop", "--force"], env=_env(), capture_output=True)
    subprocess.run([RAY, "start", "--head", f"--port={gcs}", "--num-cpus=2", "--num-gpus=2",
                    "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
                    f"--temp-dir={temp}", "--disable-usage-stats"], env=_env(), check=True, capture_output=True,
                   timeout=180)
    yield f"http://127.0.0.1:{dash}"
    subprocess.run([RAY, "stop", "--force"], env=_env(), capture_output=True, timeout=120)


def _submit(address: str, *args: str, wait: bool = True, job_id: str | None = None) -> subprocess.CompletedProcess:
    cmd = [RAY, "job", "submit", "--address", address, "--working-dir", ROOT]
    if job_id:
        cmd += ["--submission-id", job_id]
    if not wait:
        cmd.append("--no-wait")
    cmd += ["--", "python", "-m", "ray_jobs.backfill", *args]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=900)


def _rows(out: str) -> list[dict]:
    return pq.read_table(os.path.join(out, "_manifest")).to_pylist()


def test_job_submit_runs_the_backfill(head, tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    write_local(str(inp), scene_files(good=2))
    r = _submit(head, "--input", str(inp), "--output", str(out))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "succeeded" in (r.stdout + r.stderr).lower()
    rows = _rows(str(out))
    assert sorted(r["status"] for r in rows) == ["failed", "failed", "ok", "ok"]
    assert os.path.isfile(out / "scene_0.sog") and os.path.isfile(out / "nested" / "deeper" / "scene_1.sog")


def test_two_jobs_at_once_share_the_gpus(head, tmp_path):
    jobs = []
    for name in ("a", "b"):
        inp = tmp_path / f"in_{name}"
        write_local(str(inp), {k: v for k, v in scene_files(good=3).items() if k.endswith(".ply")
                               and not k.startswith("corrupt")})
        job_id = f"sogs-test-{name}-{os.getpid()}"
        r = _submit(head, "--input", str(inp), "--output", str(tmp_path / f"out_{name}"), "--actors", "1",
                    wait=False, job_id=job_id)
        assert r.returncode == 0, r.stderr
        jobs.append(job_id)
    deadline = time.monotonic() + 420
    status = {}
    while time.monotonic() < deadline:
        for j in jobs:
            p = subprocess.run([RAY, "job", "status", "--address", head, j], env=_env(), capture_output=True,
                               text=True)
            s = (p.stdout + p.stderr).lower()
            status[j] = "SUCCEEDED" if "succeeded" in s else "FAILED" if ("failed" in s or "stopped" in s) else "RUNNING"
        if all(v != "RUNNING" for v in status.values()):
            break
        time.sleep(2)
    assert all(v == "SUCCEEDED" for v in status.values()), status
    for name in ("a", "b"):
        rows = _rows(str(tmp_path / f"out_{name}"))
        assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)


def test_scenes_spread_over_nodes(tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    from ray_jobs import backfill

    os.environ.update(fast_env())
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1, num_gpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level="WARNING")
        inp = tmp_path / "in"
        # scenes big enough that the first actor to answer cannot finish them all before the other
        # answers (work goes only to actors that answered: with four tiny scenes one took all)
        write_local(str(inp), {k: v for k, v in scene_files(good=4, n=20000).items()
                               if k.endswith(".ply") and not k.startswith("corrupt")})
        args = backfill.build_parser().parse_args(["--input", str(inp), "--output", str(tmp_path / "out")])
        s = backfill.run(args)
        assert s["ok"] == 4
        nodes = {r["node"] for r in _rows(str(tmp_path / "out"))}
        assert len(nodes) == 2, nodes
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_cluster_yaml_passes_rays_validation_and_a_typo_fails():
    from ray.autoscaler._private.util import prepare_config, validate_config

    path = os.path.join(ROOT, "cluster.yaml")
    with open(path) as f:
        good = yaml.safe_load(f)
    validate_config(prepare_config(good))
    assert good["available_node_types"]["gpu_worker"]["resources"]["GPU"] == 1
    text = open(path).read()
    assert "aws_secret_access_key" not in text.lower() and "AKIA" not in text
    bad = yaml.safe_load(open(path))
    bad["available_node_types"]["gpu_worker"]["min_workerz"] = 1
    with pytest.raises(Exception, match="min_workerz"):
        validate_config(prepare_config(bad))


def test_cli_backfill_local_no_gpu_says_cpu_once(tmp_path):
    """The embedded default: local folder in and out, local Ray started by the command, no GPU."""
    inp = tmp_path / "in"
    write_local(str(inp), {"one.ply": scene_files(good=1)["scene_0.ply"]})
    env = _env()
    env.pop("RAY_ADDRESS", None)
    r = subprocess.run([sys.executable, "-m", "sogs_cli.main", "backfill", "--input", str(inp), "--output",
                        str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.count("compressing on CPU") == 1
    assert os.path.isfile(tmp_path / "out" / "one.sog")
    r = subprocess.run([sys.executable, "-m", "ray_jobs.backfill", "--input", str(tmp_path / "nope"), "--output",
                        str(tmp_path / "o2")], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "does not exist" in r.stderr
