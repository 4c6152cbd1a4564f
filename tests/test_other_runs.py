"""Two runs on one output: a scene another run settles between this run's plan and its claim is
`skipped`, never compressed again; the other runs' manifest is read incrementally.

The scheduler runs here against a fake Ray (no cluster): the race is staged step by step instead of
hoped for, so the test fails every time the check after the claim is missing."""
from __future__ import annotations

import datetime as dt
import errno
import os

from ray_jobs.actors import utcnow
from ray_jobs.backfill import build_parser, plan, settled_by_other_run, settings_hash
from ray_jobs.leases import Leases
from ray_jobs.manifest import ManifestWriter, OtherRunsView, empty_row, read_manifest
from ray_jobs.scheduler import Scheduler
from ray_jobs.storage import Store


class FakeRay:
    """Just what Scheduler calls: remote results held until `get`; `wait` answers at once."""

    def __init__(self) -> None:
        self.values: dict[int, object] = {}
        self.n = 0

    def put(self, value) -> int:
        self.n += 1
        self.values[self.n] = value
        return self.n

    def get(self, ref: int):
        return self.values.pop(ref)

    def wait(self, refs, num_returns: int, timeout: float):
        return refs[:num_returns], refs[num_returns:]

    def kill(self, actor, no_restart: bool = False) -> None:
        pass


class Method:
    def __init__(self, fn) -> None:
        self.remote = fn


class FakeActor:
    """Answers ready() and compresses nothing: process() returns an `ok` row and records the scene."""

    def __init__(self, ray: FakeRay, run_id: str, shash: str) -> None:
        self.compressed: list[str] = []
        self.ready = Method(lambda: ray.put("fake actor"))

        def process(task: dict, attempts: int) -> int:
            self.compressed.append(task["input_uri"])
            return ray.put(ok_row(task, run_id, shash))

        self.process = Method(process)


def ok_row(task: dict, run_id: str, shash: str) -> dict:
    row = empty_row()
    now = utcnow()
    row.update(run_id=run_id, input_uri=task["input_uri"], input_bytes=task["size"], input_etag=task["etag"],
               input_format=task["format"], output_uri=task["output_uri"], settings_hash=shash, status="ok",
               splats=10, seconds_total=0.1, attempts=1, started_at=now - dt.timedelta(seconds=1), finished_at=now)
    return row


def test_a_scene_settled_between_plan_and_claim_is_skipped(tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    for name in ("a.ply", "b.ply"):
        (inp / name).write_bytes(b"ply\n")          # never read: the fake actor compresses nothing
    args = build_parser().parse_args(["--input", str(inp), "--output", str(out), "--device", "cpu"])
    args.manifest = str(out / "_manifest")
    store = Store()
    shash = settings_hash(args)
    planned_at = utcnow()
    tasks, skipped, _ = plan(store, args, shash, "run-b")
    assert len(tasks) == 2 and not skipped
    # after run B's plan, run A claims a.ply, writes its output and its row, and releases the lease
    a_task = next(t for t in tasks if t["rel"] == "a.ply")
    a_leases = Leases(store, "run-a")
    assert a_leases.claim(a_task["output_uri"]) is None
    store.put(a_task["output_uri"], b"a finished SOG")
    ManifestWriter(store, args.manifest, "run-a").add(ok_row(a_task, "run-a", shash))
    a_leases.release(a_task["output_uri"])
    # now run B's scheduler claims both scenes: a.ply must come out skipped, b.ply compressed
    ray = FakeRay()
    actor = FakeActor(ray, "run-b", shash)
    writer = ManifestWriter(store, args.manifest, "run-b")
    summary = {"ok": 0, "failed": 0, "skipped": 0}
    sched = Scheduler(ray, [actor], writer, Leases(store, "run-b"), settled_by_other_run(store, args, "run-b", shash, planned_at),
                      "run-b", shash, 0, "auto", summary, log=lambda msg: None)
    sched.run(tasks)
    writer.close()
    assert actor.compressed == [t["input_uri"] for t in tasks if t["rel"] == "b.ply"]
    assert summary["ok"] == 1 and summary["skipped"] == 1
    rows = [r for r in read_manifest(store, args.manifest).to_pylist() if r["run_id"] == "run-b"]
    assert {r["input_uri"].rsplit("/", 1)[-1]: r["status"] for r in rows} == {"a.ply": "skipped", "b.ply": "ok"}


def _one_scene(tmp_path, *flags: str):
    """(args, store, settings hash) of a backfill over a folder holding one scene, a.ply."""
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    (inp / "a.ply").write_bytes(b"ply\n")          # never read: no actor compresses it here
    args = build_parser().parse_args(["--input", str(inp), "--output", str(out), "--device", "cpu", *flags])
    args.manifest = str(out / "_manifest")
    return args, Store(), settings_hash(args)


def test_a_row_finished_before_the_plan_but_written_after_its_read_still_settles(tmp_path):
    """Run A's row finishes (its `finished_at`) a moment before it is written. When run B plans in
    that moment, B's plan cannot read the row, though it finished before B started: B's check
    after the claim must still find it and skip the scene (two runs compressed a scene twice)."""
    args, store, shash = _one_scene(tmp_path)
    a_tasks, _, _ = plan(store, args, shash, "run-a")
    a_row = ok_row(a_tasks[0], "run-a", shash)           # finished now, not yet written
    planned_at = utcnow()
    tasks, skipped, _ = plan(store, args, shash, "run-b")
    assert len(tasks) == 1 and not skipped and tasks[0]["judged"] is None
    assert a_row["finished_at"] < planned_at
    store.put(tasks[0]["output_uri"], b"a finished SOG")
    ManifestWriter(store, args.manifest, "run-a").add(a_row)
    settled = settled_by_other_run(store, args, "run-b", shash, planned_at)(tasks[0])
    assert settled is not None and settled["run_id"] == "run-a"


def test_a_row_the_plan_read_and_redid_does_not_stop_the_redo(tmp_path):
    """A settled row whose output is gone is the plan's to redo; only a newer row stops it."""
    args, store, shash = _one_scene(tmp_path)
    first, _, _ = plan(store, args, shash, "run-a")
    old = ok_row(first[0], "run-a", shash)
    ManifestWriter(store, args.manifest, "run-a").add(old)          # its output never written
    planned_at = utcnow()
    tasks, skipped, _ = plan(store, args, shash, "run-b")
    assert len(tasks) == 1 and not skipped and tasks[0]["judged"] == old["finished_at"]
    store.put(tasks[0]["output_uri"], b"a SOG, being written by run B")
    check = settled_by_other_run(store, args, "run-b", shash, planned_at)
    assert check(tasks[0]) is None
    newer = ok_row(first[0], "run-c", shash)
    ManifestWriter(store, args.manifest, "run-c").add(newer)
    assert check(tasks[0])["run_id"] == "run-c"


def test_rows_settled_before_the_plan_do_not_stop_a_forced_redo(tmp_path):
    """--force plans every scene again; the check after the claim must not skip what the plan
    meant to redo."""
    args, store, shash = _one_scene(tmp_path, "--force")
    first, _, _ = plan(store, args, shash, "run-a")
    store.put(first[0]["output_uri"], b"a finished SOG")
    ManifestWriter(store, args.manifest, "run-a").add(ok_row(first[0], "run-a", shash))
    planned_at = utcnow()
    tasks, skipped, _ = plan(store, args, shash, "run-b")
    assert len(tasks) == 1 and not skipped
    assert settled_by_other_run(store, args, "run-b", shash, planned_at)(tasks[0]) is None


def test_other_runs_view_reads_each_object_once_and_never_its_own(tmp_path):
    store = Store()
    manifest = str(tmp_path / "_manifest")
    reads: list[str] = []
    get = store.get_with_etag

    def counting_get(uri: str):
        reads.append(uri.rsplit("/", 1)[-1])
        return get(uri)

    store.get_with_etag = counting_get
    task = {"input_uri": "/in/x.ply", "size": 4, "etag": "e", "format": "ply", "output_uri": "/out/x.sog"}
    mine = ManifestWriter(store, manifest, "me")
    theirs = ManifestWriter(store, manifest, "them", compact_rows=2)
    mine.add(ok_row(task, "me", "h"))
    view = OtherRunsView(store, manifest, "me")
    view.refresh()
    assert view.latest("/in/x.ply") is None and reads == []          # this run's own row is not read
    theirs.add(ok_row(task, "them", "h"))
    view.refresh()
    view.refresh()
    assert view.latest("/in/x.ply")["run_id"] == "them" and len(reads) == 1
    # their second row triggers a compaction: the part replaces the journal objects; the view
    # reads the part once and keeps every row
    other = dict(task, input_uri="/in/y.ply")
    theirs.add(ok_row(other, "them", "h"))
    view.refresh()
    assert view.latest("/in/y.ply")["run_id"] == "them" and view.latest("/in/x.ply") is not None
    assert len(reads) == len(set(reads))


def test_a_plan_over_many_done_scenes_lists_the_outputs_once(tmp_path, monkeypatch):
    """Past LIST_OUTPUTS_ABOVE settled scenes the plan asks the store for one listing of the
    output prefix, not one HEAD per output; a scene whose output is gone is still redone."""
    import ray_jobs.backfill as backfill

    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    for i in range(6):
        (inp / f"s{i}.ply").write_bytes(b"ply\n")
    args = build_parser().parse_args(["--input", str(inp), "--output", str(out), "--device", "cpu"])
    args.manifest = str(out / "_manifest")
    store = Store()
    shash = settings_hash(args)
    first, _, _ = plan(store, args, shash, "run-a")
    writer = ManifestWriter(store, args.manifest, "run-a")
    for t in first:
        store.put(t["output_uri"], b"a finished SOG")
        writer.add(ok_row(t, "run-a", shash))
    writer.close()
    store.delete(first[2]["output_uri"])
    heads: list[str] = []
    monkeypatch.setattr(Store, "exists", lambda self, uri: heads.append(uri) or os.path.exists(uri))
    monkeypatch.setattr(backfill, "LIST_OUTPUTS_ABOVE", 3)
    monkeypatch.setattr(backfill, "LIST_LOCAL_OUTPUTS", True)       # as for an S3 output
    tasks, skipped, _ = plan(store, args, shash, "run-b")
    assert [t["rel"] for t in tasks] == [first[2]["rel"]] and len(skipped) == 5 and heads == []
    monkeypatch.setattr(backfill, "LIST_OUTPUTS_ABOVE", 1000)
    tasks, skipped, _ = plan(store, args, shash, "run-c")
    assert len(tasks) == 1 and len(skipped) == 5 and len(heads) == 6


def test_a_lease_the_storage_refuses_fails_its_scene_and_the_run_goes_on(tmp_path, monkeypatch):
    """A full disk can refuse the lease before the scene's own output: that scene becomes one
    failed row (not retried), no half-written lease is left, and the other scenes still run."""
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    for name in ("a.ply", "b.ply"):
        (inp / name).write_bytes(b"ply\n")
    args = build_parser().parse_args(["--input", str(inp), "--output", str(out), "--device", "cpu"])
    args.manifest = str(out / "_manifest")
    store = Store()
    shash = settings_hash(args)
    tasks, _, _ = plan(store, args, shash, "run-b")
    a_out = next(t for t in tasks if t["rel"] == "a.ply")["output_uri"]
    real_write = os.write

    def full_for_a(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("a.sog.lease"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_for_a)
    ray = FakeRay()
    actor = FakeActor(ray, "run-b", shash)
    writer = ManifestWriter(store, args.manifest, "run-b")
    summary = {"ok": 0, "failed": 0, "skipped": 0}
    sched = Scheduler(ray, [actor], writer, Leases(store, "run-b"), lambda task: None, "run-b", shash, 2, "auto",
                      summary, log=lambda msg: None)
    sched.run(tasks)
    monkeypatch.setattr(os, "write", real_write)
    writer.close()
    assert summary == {**summary, "ok": 1, "failed": 1}
    assert actor.compressed == [t["input_uri"] for t in tasks if t["rel"] == "b.ply"]
    rows = {r["input_uri"].rsplit("/", 1)[-1]: r for r in read_manifest(store, args.manifest).to_pylist()}
    assert rows["a.ply"]["status"] == "failed" and "No space left" in rows["a.ply"]["error_message"]
    assert rows["a.ply"]["attempts"] == 1
    assert not os.path.exists(a_out + ".lease")
