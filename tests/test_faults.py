"""The backfill under faults, tried as a hostile operator would: drivers and actors killed by pid,
hostile listing entries, a stuck scene, unwritable and full outputs, an S3 outage, two runs on
one output. Drivers run as separate processes against a local Ray head (CPU actors), as in
production; every scene must end as exactly one row per run."""
from __future__ import annotations

import glob
import io
import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from ray_jobs.manifest import SCHEMA, conform, read_manifest
from ray_jobs.storage import Store, backoff_schedule, retrying

from .conftest import ROOT, make_scene
from .ray_helpers import FaultProxy, MotoServer, fast_env, free_port, write_local

RAY = os.path.join(os.path.dirname(sys.executable), "ray")
BUCKET = "fault-bucket"


def _env(extra: dict | None = None) -> dict:
    env = dict(os.environ, **fast_env())
    env["PYTHONPATH"] = ROOT
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(extra or {})
    return env


@pytest.fixture(scope="module")
def s3_proxy():
    """moto's S3 server and a fault-injecting proxy in front of it."""
    server = MotoServer()
    proxy = FaultProxy(server.url)
    client = server.client()
    client.create_bucket(Bucket=BUCKET)
    yield server, proxy, client
    proxy.stop()
    server.stop()


@pytest.fixture(scope="module")
def head(tmp_path_factory, s3_proxy):
    """A local Ray head (3 CPUs, no GPU) that the drivers connect to, so that killing a driver
    leaves Ray itself alone. Its workers see S3 through the fault proxy, as cluster nodes see S3
    through their own environment (instance profile, endpoint)."""
    if not os.path.exists(RAY):
        pytest.fail(f"ray CLI not found beside {sys.executable}")
    server, proxy, _ = s3_proxy
    s3_env = {**server.env, "AWS_ENDPOINT_URL": proxy.url}
    port = free_port()
    temp = str(tmp_path_factory.mktemp("rayfaults"))
    subprocess.run([RAY, "stop", "--force"], env=_env(), capture_output=True)
    subprocess.run([RAY, "start", "--head", f"--port={port}", "--num-cpus=3", "--num-gpus=0",
                    "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"],
                   env=_env(s3_env), check=True, capture_output=True, timeout=180)
    yield f"127.0.0.1:{port}"
    subprocess.run([RAY, "stop", "--force"], env=_env(), capture_output=True, timeout=120)


def _scenes(n_scenes: int, n: int = 1500, sh: int = 1, prefix: str = "s") -> dict[str, bytes]:
    from sogs_core.formats.ply.write import ply_bytes

    return {f"{prefix}_{i:02d}.ply": ply_bytes(make_scene(n + 11 * i, sh, seed=300 + i)) for i in range(n_scenes)}


def _driver(head: str, inp, out, *extra: str, env: dict | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ray_jobs.backfill", "--input", str(inp), "--output", str(out),
           "--device", "cpu", "--actors", "1", *extra]
    return subprocess.Popen(cmd, env=_env({"RAY_ADDRESS": head, **(env or {})}), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, dict, str]:
    out, err = proc.communicate(timeout=timeout)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    return proc.returncode, (json.loads(lines[-1]) if lines else {}), err


def _rows(manifest: str, run_id: str | None = None) -> list[dict]:
    table = read_manifest(Store(), manifest)
    rows = [] if table is None else table.to_pylist()
    return [r for r in rows if run_id is None or r["run_id"] == run_id]


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_killed_driver_loses_no_finished_scene(head, tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    write_local(str(inp), _scenes(8, n=20000))
    proc = _driver(head, inp, out, "--lease-seconds", "4")
    _wait_for(lambda: len(glob.glob(str(out / "_manifest" / "*-row-*.parquet"))) >= 2 or proc.poll() is not None,
              300, "two finished rows")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = {r["input_uri"] for r in _rows(str(out / "_manifest")) if r["status"] == "ok"}
    assert len(kept) >= 2
    for uri in kept:      # every row's output is there
        assert os.path.isfile(str(out / os.path.basename(uri)).replace(".ply", ".sog"))
    # the re-run skips exactly the scenes with rows and does the rest (the killed run's leases expire)
    rc, summary, err = _finish(_driver(head, inp, out, "--lease-seconds", "4"))
    assert rc == 0, err[-3000:]
    rows = _rows(str(out / "_manifest"), summary["run_id"])
    assert len(rows) == 8 and len({r["input_uri"] for r in rows}) == 8
    assert {r["input_uri"] for r in rows if r["status"] == "skipped"} == kept
    assert all(r["status"] == "ok" for r in rows if r["input_uri"] not in kept)


def _actor_pids() -> list[int]:
    """Pids of the compressor actors' worker processes (Ray titles them ray::SceneCompressor)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith("ray::SceneCompressor"):
            pids.append(int(entry))
    return pids


@pytest.mark.parametrize("retries", [1, 0])
def test_actor_killed_mid_scene(head, tmp_path, retries):
    """Attempts count the try the kill cut short; with no retries the cut scenes fail with
    attempts=1 and every other scene (never started on the dying actor) still ends ok."""
    inp, out = tmp_path / "in", tmp_path / "out"
    write_local(str(inp), _scenes(6, n=25000))
    proc = _driver(head, inp, out, "--max-retries", str(retries))
    _wait_for(lambda: glob.glob(str(out / "_manifest" / "*-row-*.parquet")) or proc.poll() is not None,
              300, "a first finished row")
    pids = _actor_pids()
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    rc, summary, err = _finish(proc)
    rows = _rows(str(out / "_manifest"), summary["run_id"])
    assert len(rows) == 6 and len({r["input_uri"] for r in rows}) == 6, err[-3000:]
    cut = [r for r in rows if r["attempts"] > 1 or r["status"] == "failed"]
    assert 1 <= len(cut) <= 2, rows
    if retries:
        assert all(r["status"] == "ok" for r in rows) and all(r["attempts"] == 2 for r in cut)
    else:
        assert all(r["attempts"] == 1 and "Actor" in r["error_class"] for r in cut), cut
        assert all(r["status"] == "ok" for r in rows if r not in cut)
    assert "Traceback" not in err


def test_hostile_listing_entries_are_rows_not_aborts(head, tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    write_local(str(inp), _scenes(1))
    os.symlink("loop.ply", inp / "loop.ply")
    os.symlink("missing.ply", inp / "dangling.ply")
    os.mkfifo(inp / "pipe.ply")
    rc, summary, err = _finish(_driver(head, inp, out), timeout=300)
    assert rc == 0, err[-3000:]
    rows = {os.path.basename(r["input_uri"]): r for r in _rows(str(out / "_manifest"), summary["run_id"])}
    assert rows["s_00.ply"]["status"] == "ok"
    for name, why in (("loop.ply", "symlink loop"), ("dangling.ply", "dangling symlink"), ("pipe.ply", "named pipe")):
        assert rows[name]["status"] == "failed" and rows[name]["error_class"] == "UnreadableInput"
        assert why in rows[name]["error_message"], rows[name]


def test_a_stuck_scene_times_out_and_the_rest_go_on(head, tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    files = _scenes(3)
    from sogs_core.formats.ply.write import ply_bytes

    files["z_big.ply"] = ply_bytes(make_scene(120000, 3, seed=9))
    write_local(str(inp), files)
    t0 = time.monotonic()
    rc, summary, err = _finish(_driver(head, inp, out, "--scene-timeout", "4", "--max-retries", "1"), timeout=400)
    rows = {os.path.basename(r["input_uri"]): r for r in _rows(str(out / "_manifest"), summary["run_id"])}
    assert rows["z_big.ply"]["status"] == "failed" and rows["z_big.ply"]["error_class"] == "SceneTimeout"
    assert "did not finish within 4 s" in rows["z_big.ply"]["error_message"]
    assert all(rows[f"s_0{i}.ply"]["status"] == "ok" for i in range(3)), rows
    assert time.monotonic() - t0 < 300


def test_unwritable_output_is_refused_up_front(tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    write_local(str(tmp_path / "in"), _scenes(1))
    r = subprocess.run([sys.executable, "-m", "ray_jobs.backfill", "--input", str(tmp_path / "in"),
                        "--output", str(tmp_path / "file" / "out")], env=_env(), cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and "cannot write under" in errors[0], r.stderr


def _mount_tmpfs(path, size: str, readonly: bool = False) -> None:
    os.makedirs(path, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"SKIP REASON: cannot mount a tmpfs here ({r.stderr.strip()})")
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")


def test_read_only_output_is_refused_up_front(tmp_path):
    _mount_tmpfs(tmp_path / "ro", "1m", readonly=True)
    try:
        write_local(str(tmp_path / "in"), _scenes(1))
        r = subprocess.run([sys.executable, "-m", "ray_jobs.backfill", "--input", str(tmp_path / "in"),
                            "--output", str(tmp_path / "ro" / "out")], env=_env(), cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 2 and "cannot write under" in r.stderr and "Traceback" not in r.stderr
    finally:
        subprocess.run(["umount", str(tmp_path / "ro")])


def test_full_disk_mid_run(head, tmp_path):
    """Outputs and manifest on a 300 KB tmpfs: the first scenes fit, then writes fail. Every scene
    still ends as one row (on disk, or printed as JSON when even the manifest cannot be written),
    the driver does not crash, and no temporary file is left behind."""
    out = tmp_path / "out"
    _mount_tmpfs(out, "300k")
    try:
        inp = tmp_path / "in"
        write_local(str(inp), _scenes(8, n=4000))
        rc, summary, err = _finish(_driver(head, inp, out, "--lease-seconds", "30"), timeout=400)
        assert "Traceback" not in err, err[-3000:]
        on_disk = _rows(str(out / "_manifest"), summary["run_id"])
        printed = [json.loads(ln) for ln in err.splitlines() if ln.startswith("{")]
        uris = [r["input_uri"] for r in on_disk] + [r["input_uri"] for r in printed]
        assert sorted(uris) == sorted(str(inp / name) for name in _scenes(8, n=4000)), (on_disk, printed)
        failed = [r for r in on_disk + printed if r["status"] == "failed"]
        assert failed and all("No space left" in r["error_message"] for r in failed)
        assert all(r["attempts"] == 1 for r in failed)          # a full disk is not retried
        assert not [p for p in glob.glob(str(out / "**" / "*tmp-*"), recursive=True)]
        assert rc == (1 if printed else 0)
    finally:
        subprocess.run(["umount", str(out)])


def test_two_runs_on_one_output_compress_each_scene_once(head, tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    write_local(str(inp), _scenes(6, n=20000))
    a = _driver(head, inp, out)
    time.sleep(1.0)
    b = _driver(head, inp, out)
    (rc_a, sa, ea), (rc_b, sb, eb) = _finish(a), _finish(b)
    assert rc_a == 0 and rc_b == 0, ea[-2000:] + eb[-2000:]
    rows = _rows(str(out / "_manifest"))
    by_run = {sa["run_id"]: [], sb["run_id"]: []}
    for r in rows:
        by_run[r["run_id"]].append(r)
    assert all(len(v) == 6 for v in by_run.values())
    ok = [r["input_uri"] for r in rows if r["status"] == "ok"]
    assert sorted(ok) == sorted(set(ok)) and len(ok) == 6       # each scene compressed exactly once
    assert sa["ok"] + sb["ok"] == 6 and sa["skipped"] + sb["skipped"] == 6


# -- S3 --------------------------------------------------------------------------------------------
def test_backoff_rides_out_a_61_second_outage():
    """The retry schedule on a simulated clock: every request fails for 61 s, then works."""
    from botocore.exceptions import ClientError

    now = [0.0]
    calls = []

    def flaky():
        calls.append(now[0])
        if now[0] < 61.0:
            raise ClientError({"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject")
        return "ok"

    def sleep(s):
        now[0] += s

    assert retrying(flaky, 120.0, sleep=sleep, clock=lambda: now[0]) == "ok"
    waits = [b - a for a, b in zip(calls, calls[1:])]
    assert max(waits) <= 16.0 and waits[0] <= 0.5 and len(calls) < 20
    assert sum(backoff_schedule(120.0)) <= 120.0 and backoff_schedule(120.0)[:5] == [0.5, 1, 2, 4, 8]
    # a refusal (403) is not waited on
    calls.clear()

    def denied():
        calls.append(1)
        raise ClientError({"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject")

    with pytest.raises(ClientError):
        retrying(denied, 120.0, sleep=sleep, clock=lambda: now[0])
    assert len(calls) == 1


def test_s3_outage_of_20_seconds_is_ridden_out(head, s3_proxy):
    server, proxy, client = s3_proxy
    files = _scenes(4)
    for rel, data in files.items():
        client.put_object(Bucket=BUCKET, Key=f"in/{rel}", Body=data)
    env = {**server.env, "AWS_ENDPOINT_URL": proxy.url}
    proc = _driver(head, f"s3://{BUCKET}/in/", f"s3://{BUCKET}/out/", env=env)

    def first_output() -> bool:
        return bool(client.list_objects_v2(Bucket=BUCKET, Prefix="out/s_").get("Contents")) or proc.poll() is not None

    _wait_for(first_output, 300, "a first output")
    proxy.outage_until = time.monotonic() + 20.0
    failed_before = proxy.failed
    rc, summary, err = _finish(proc)
    assert proxy.failed > failed_before, "the outage never hit a request"
    assert rc == 0 and (summary["ok"], summary["failed"]) == (4, 0), err[-3000:]
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="out/")["Contents"]}
    assert {f"out/{rel[:-4]}.sog" for rel in files} <= keys
    parts = [k for k in keys if k.startswith("out/_manifest/")]
    rows = []
    for k in parts:
        rows += conform(pq.read_table(io.BytesIO(client.get_object(Bucket=BUCKET, Key=k)["Body"].read()))).to_pylist()
    assert len({r["input_uri"] for r in rows if r["run_id"] == summary["run_id"]}) == 4
    assert pq.read_table(io.BytesIO(client.get_object(Bucket=BUCKET, Key=parts[0])["Body"].read())).schema.equals(
        SCHEMA, check_metadata=False)


def test_streamed_scene_survives_an_actor_killed_between_chunks(head, tmp_path):
    """A streamed scene over two actors, one SIGKILLed once chunks are being written: its unit
    goes back to the queue, the scene ends ok with every level whole, and lod-meta.json (written
    last) indexes only complete files."""
    from sogs_core.formats.ply.write import ply_bytes
    from sogs_core.formats.lod_meta.read import read_lod_level
    from sogs_core.model.synth import synthetic_scene

    inp, out = tmp_path / "in", tmp_path / "out"
    write_local(str(inp), {"big.ply": ply_bytes(synthetic_scene(150_000, 0, seed=8))})
    proc = _driver(head, inp, out, "--actors", "2", "--streamed-above", "10000", "--lod-levels", "2",
                   "--chunk-count", "8", "--chunk-min", "1", "--chunk-extent", "2", "--max-retries", "2")
    _wait_for(lambda: glob.glob(str(out / "big" / "0_*" / "meta.json")) or proc.poll() is not None,
              300, "a first chunk written")
    assert not os.path.exists(out / "big" / "lod-meta.json")          # chunks first, the index last
    pids = _actor_pids()
    assert len(pids) == 2, pids
    os.kill(pids[0], signal.SIGKILL)
    rc, summary, err = _finish(proc)
    assert rc == 0, err[-3000:]
    rows = _rows(str(out / "_manifest"), summary["run_id"])
    assert len(rows) == 1 and rows[0]["status"] == "ok", rows
    counts = json.loads(rows[0]["lod_counts"])
    meta = str(out / "big" / "lod-meta.json")
    assert [read_lod_level(meta, k).count for k in range(2)] == counts
    assert counts[0] == rows[0]["splats"] and rows[0]["splats"] + rows[0]["dropped_invisible"] == 150_000
    assert "Traceback" not in err
