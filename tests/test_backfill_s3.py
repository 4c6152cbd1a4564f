"""The backfill against a real S3 endpoint (moto server over HTTP) and a local Ray with two fake
GPUs, through the same code as production: listing, corrupt inputs as rows, resume, redo."""
from __future__ import annotations

import io
import os

import pyarrow.parquet as pq
import pytest

from ray_jobs import backfill
from ray_jobs.manifest import SCHEMA
from ray_jobs.storage import Store
from sogs_core.quantize.quality import position_bound_steps
from sogs_core.settings import DEFAULT_QUALITY

from .ray_helpers import MotoServer, fast_env, scene_files

BUCKET = "scenes-bucket"


@pytest.fixture(scope="module")
def s3():
    server = MotoServer()
    saved = {k: os.environ.get(k) for k in server.env}
    os.environ.update(server.env)
    client = server.client()
    client.create_bucket(Bucket=BUCKET)
    yield server, client
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()


@pytest.fixture(scope="module")
def local_ray(s3):
    import ray

    server, _ = s3
    os.environ.update(fast_env())
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {**server.env, "OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()


def _manifest_rows(client, run_id=None) -> list[dict]:
    rows = []
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix="out/_manifest/")
    for obj in listing.get("Contents", []):
        body = client.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
        table = pq.read_table(io.BytesIO(body))
        assert table.schema.equals(SCHEMA, check_metadata=False)
        rows += table.to_pylist()
    return [r for r in rows if run_id is None or r["run_id"] == run_id]


def _outputs(client) -> set[str]:
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix="out/")
    return {o["Key"] for o in listing.get("Contents", []) if not o["Key"].startswith("out/_manifest")}


def _run(*extra: str) -> dict:
    args = backfill.build_parser().parse_args(
        ["--input", f"s3://{BUCKET}/in/", "--output", f"s3://{BUCKET}/out/", "--max-retries", "1", *extra])
    return backfill.run(args)


def test_backfill_resume_and_redo(s3, local_ray):
    _, client = s3
    files = scene_files(good=4)
    for rel, data in files.items():
        client.put_object(Bucket=BUCKET, Key=f"in/{rel}", Body=data)

    # dry run: plans, writes nothing
    s = _run("--dry-run")
    assert (s["todo"], s["skipped"]) == (6, 0) and not _outputs(client)

    # first run: 4 ok, 2 failed rows, outputs only for the 4
    s = _run()
    assert (s["ok"], s["failed"], s["skipped"]) == (4, 2, 0)
    rows = _manifest_rows(client, s["run_id"])
    assert len(rows) == 6
    by_status = {r["input_uri"].split("/in/")[1]: r for r in rows}
    for rel in ("corrupt/garbage.ply", "corrupt/truncated.ply"):
        r = by_status[rel]
        assert r["status"] == "failed" and r["error_class"] == "PlyError" and rel in r["error_message"]
        assert r["attempts"] == 1  # bad input is not retried
    assert "truncated body" in by_status["corrupt/truncated.ply"]["error_message"]
    ok = [r for r in rows if r["status"] == "ok"]
    for r in ok:
        assert r["splats"] > 0 and r["output_bytes"] > 0 and r["ratio"] > 1
        assert r["input_etag"] and r["settings_hash"] == s["settings_hash"]
        # the backfill's default level: positions within its bound, the level in the row
        assert r["fid_rotation_max_deg"] <= 1.5 and r["quality"] == DEFAULT_QUALITY
        assert r["fid_position_max_steps"] <= position_bound_steps(DEFAULT_QUALITY) + 1e-3
        assert all(r[f"seconds_{k}"] is not None for k in ("read", "sort", "cluster", "quantize", "encode", "write"))
        # no --render-metric: no render figures, no floor (tests/test_render_columns.py has them on)
        assert all(r[k] is None for k in ("render_psnr", "render_ssim", "render_psnr_worst_view", "render_below_min",
                                          "seconds_render"))
    assert _outputs(client) == {"out/scene_0.sog", "out/scene_2.sog", "out/nested/deeper/scene_1.sog",
                                "out/nested/deeper/scene_3.sog"}

    # re-run: everything skipped (the bad inputs too, until they change)
    s = _run()
    assert (s["ok"], s["failed"], s["skipped"]) == (0, 0, 6)
    rows = _manifest_rows(client, s["run_id"])
    assert len(rows) == 6 and all(r["status"] == "skipped" for r in rows)

    # delete one output: exactly that one is redone
    client.delete_object(Bucket=BUCKET, Key="out/nested/deeper/scene_3.sog")
    s = _run()
    assert (s["ok"], s["failed"], s["skipped"]) == (1, 0, 5)
    redone = [r for r in _manifest_rows(client, s["run_id"]) if r["status"] == "ok"]
    assert [r["input_uri"] for r in redone] == [f"s3://{BUCKET}/in/nested/deeper/scene_3.sog"[:-4] + ".ply"]
    assert "out/nested/deeper/scene_3.sog" in _outputs(client)

    # a changed input (new ETag) is redone; --force redoes all
    client.put_object(Bucket=BUCKET, Key="in/corrupt/garbage.ply", Body=files["scene_0.ply"])
    s = _run()
    assert (s["ok"], s["skipped"]) == (1, 5)
    s = _run("--force", "--include", "scene_*", "--include", "nested/*")
    assert (s["ok"], s["skipped"], s["todo"]) == (4, 0, 4)


def test_listing_paginates_past_1000_keys(s3):
    _, client = s3
    for i in range(1010):
        client.put_object(Bucket=BUCKET, Key=f"many/{i:05d}.ply", Body=b"x")
    client.put_object(Bucket=BUCKET, Key="many/readme.md", Body=b"x")
    objs = Store().list(f"s3://{BUCKET}/many/", accept=lambda rel: rel.endswith(".ply"))
    assert len(objs) == 1010 and objs[0].rel == "00000.ply" and objs[-1].rel == "01009.ply"
    assert all(o.size == 1 and o.etag for o in objs)


def test_folder_layout_writes_meta_last(s3, local_ray, tmp_path):
    _, client = s3
    client.put_object(Bucket=BUCKET, Key="fl/one.ply", Body=scene_files(good=1)["scene_0.ply"])
    args = backfill.build_parser().parse_args(
        ["--input", f"s3://{BUCKET}/fl/", "--output", f"s3://{BUCKET}/flout/", "--layout", "folder"])
    s = backfill.run(args)
    assert s["ok"] == 1
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="flout/one/")["Contents"]]
    assert "flout/one/meta.json" in keys and "flout/one/quats.webp" in keys


def test_order_and_plas_schedule_are_part_of_the_settings_hash(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)

    def shash(*extra: str) -> str:
        return backfill.settings_hash(backfill.build_parser().parse_args(["--input", "a", "--output", "b", *extra]))

    assert shash("--order", "morton") != shash() != shash("--order", "plas")
    plas = ("--order", "plas")
    assert shash(*plas, "--plas", "fast") != shash(*plas, "--plas", "full")
    assert shash(*plas, "--device", "cpu") == shash(*plas, "--plas", "fast")     # auto on CPU actors: fast
    assert shash(*plas, "--device", "cuda") == shash(*plas, "--plas", "full")
    assert shash(*plas, "--address", "ray://head:10001") == shash(*plas, "--plas", "full")   # a cluster: full
    # the default order does not use the PLAS schedule: changing it redoes nothing
    assert shash("--plas", "fast") == shash("--plas", "full") == shash()


def test_backfill_over_a_mixed_folder(s3, local_ray, tmp_path):
    """Every format in one bucket prefix: each becomes a .sog with its format in the manifest; a SOG
    v1 folder (its meta.json the unit, its images fetched beside it) is upgraded to v2; a bad SPZ and
    two inputs mapping to one output are failed rows; the other scenes go on."""
    from sogs_core.formats.ply.write import write_ply
    from sogs_core.formats.sog.read import read_sog

    from . import splat_transform
    from .conftest import make_scene, shared_path
    from .format_writers import ksplat_bytes, splat_bytes

    _, client = s3
    scene = make_scene(1600, 1, seed=41)
    write_ply(tmp_path / "a.ply", scene)
    splat_transform.run(str(tmp_path / "a.ply"), str(tmp_path / "a.compressed.ply"))
    splat_transform.run(str(tmp_path / "a.ply"), str(tmp_path / "a.spz"))
    splat_transform.run(str(tmp_path / "a.ply"), str(tmp_path / "a.sog"))
    files = {"plain/a.ply": (tmp_path / "a.ply").read_bytes(),
             "packed/a.compressed.ply": (tmp_path / "a.compressed.ply").read_bytes(),
             "niantic/a.spz": (tmp_path / "a.spz").read_bytes(),
             "web/a.splat": splat_bytes(scene.with_sh_degree(0)),
             "web/b.ksplat": ksplat_bytes(scene, 1),
             "tools/a.sog": (tmp_path / "a.sog").read_bytes(),
             "bad/broken.spz": b"NGSP" + b"\x00" * 40,
             "twice/x.ply": (tmp_path / "a.ply").read_bytes(),
             "twice/x.spz": (tmp_path / "a.spz").read_bytes()}
    logo = shared_path("scenes", "sog_refs", "playcanvas-logo_v1")
    for name in os.listdir(logo):
        files[f"old/logo/{name}"] = open(os.path.join(logo, name), "rb").read()
    for rel, data in files.items():
        client.put_object(Bucket=BUCKET, Key=f"mixed/{rel}", Body=data)

    args = backfill.build_parser().parse_args(
        ["--input", f"s3://{BUCKET}/mixed/", "--output", f"s3://{BUCKET}/mixout/", "--max-retries", "0"])
    s = backfill.run(args)
    rows = {r["input_uri"].split("/mixed/")[1]: r for r in _rows_under(client, "mixout/_manifest/", s["run_id"])}
    expect = {"plain/a.ply": "ply", "packed/a.compressed.ply": "compressed-ply", "niantic/a.spz": "spz",
              "web/a.splat": "splat", "web/b.ksplat": "ksplat", "tools/a.sog": "sog-v2",
              "old/logo/meta.json": "sog-v1", "twice/x.ply": "ply"}
    for rel, fmt in expect.items():
        assert rows[rel]["status"] == "ok" and rows[rel]["input_format"] == fmt, rows[rel]
    assert rows["bad/broken.spz"]["status"] == "failed" and rows["bad/broken.spz"]["error_class"] == "SpzError"
    clash = rows["twice/x.spz"]
    assert clash["status"] == "failed" and "twice/x.sog" in clash["error_message"] and clash["input_format"] == "spz"
    assert (s["ok"], s["failed"]) == (8, 2) and len(rows) == 10
    report = client.get_object(Bucket=BUCKET, Key=s["report"][len(f"s3://{BUCKET}/"):])["Body"].read().decode()
    assert "OutputCollision" in report and "SpzError" in report and report.count("<svg") == 4
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="mixout/")["Contents"]}
    for out in ("plain/a.sog", "packed/a.compressed.sog", "niantic/a.sog", "web/a.sog", "web/b.sog", "tools/a.sog",
                "old/logo.sog", "twice/x.sog"):
        assert f"mixout/{out}" in keys, out
    body = client.get_object(Bucket=BUCKET, Key="mixout/old/logo.sog")["Body"].read()
    (tmp_path / "logo.sog").write_bytes(body)
    assert read_sog(str(tmp_path / "logo.sog")).count == rows["old/logo/meta.json"]["splats"] == 307128
    assert rows["old/logo/meta.json"]["input_bytes"] > 4_000_000     # meta.json and every image it names

    # --formats narrows the listing; a re-run skips what is done and the known-bad input; with
    # x.ply out of the listing, x.spz no longer collides and is to do
    args = backfill.build_parser().parse_args(
        ["--input", f"s3://{BUCKET}/mixed/", "--output", f"s3://{BUCKET}/mixout/", "--formats", "spz,ksplat",
         "--dry-run"])
    s = backfill.run(args)
    assert (s["listed"], s["skipped"], s["todo"]) == (4, 3, 1)


def _rows_under(client, prefix: str, run_id: str) -> list[dict]:
    rows = []
    for obj in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []):
        body = client.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
        rows += pq.read_table(io.BytesIO(body)).to_pylist()
    return [r for r in rows if r["run_id"] == run_id]


def test_huge_scene_becomes_a_streamed_sog_spread_over_the_actors(s3, local_ray, tmp_path):
    """--streamed-above: the big PLY's chunk groups run on both actors, lod-meta.json is written
    last under x/, one manifest row tells levels and files; the small scene stays one .sog; a
    re-run skips both."""
    import json

    from sogs_core.formats.ply.write import ply_bytes
    from sogs_core.formats.lod_meta.read import read_lod_level

    from .conftest import make_scene

    _, client = s3
    big = make_scene(30_000, 1, seed=4)
    client.put_object(Bucket=BUCKET, Key="lod/big.ply", Body=ply_bytes(big))
    client.put_object(Bucket=BUCKET, Key="lod/small.ply", Body=ply_bytes(make_scene(2000, 1, seed=5)))
    args = ["--input", f"s3://{BUCKET}/lod/", "--output", f"s3://{BUCKET}/lodout/", "--streamed-above", "10000",
            "--lod-levels", "2", "--chunk-count", "4", "--chunk-extent", "3", "--chunk-min", "1", "--memory-budget", "0",
            "--groups-per-call", "3"]       # batched calls on CPU actors too (a GPU's default)
    s = backfill.run(backfill.build_parser().parse_args(args))
    assert (s["ok"], s["failed"]) == (2, 0), s
    store = Store()
    rows = {r["input_uri"].rsplit("/", 1)[1]: r for r in
            pq.read_table(io.BytesIO(store.get(f"s3://{BUCKET}/lodout/_manifest/" + _first_part(client)))).to_pylist()}
    row = rows["big.ply"]
    assert row["output_uri"] == f"s3://{BUCKET}/lodout/big/lod-meta.json"
    # level 0: every splat but those stored at opacity 0 (left out as a single SOG leaves them out)
    assert row["lod_levels"] == 2 and row["splats"] + row["dropped_invisible"] == 30_000 and row["lod_files"] > 4
    counts = json.loads(row["lod_counts"])
    assert counts[0] == row["splats"] and row["dropped_invisible"] < 300 and 14_000 <= counts[1] <= 16_000
    assert len(row["node"].split(", ")) == 2                   # both actors compressed chunk groups
    assert rows["small.ply"]["lod_levels"] is None and rows["small.ply"]["output_uri"].endswith("small.sog")
    # the streamed output, fetched: every level readable, as many splats as lod-meta.json says
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="lodout/big/")["Contents"]]
    for key in keys:
        dest = tmp_path / key
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    meta_path = str(tmp_path / "lodout" / "big" / "lod-meta.json")
    assert [read_lod_level(meta_path, k).count for k in (0, 1)] == counts
    s = backfill.run(backfill.build_parser().parse_args(args))
    assert (s["ok"], s["skipped"]) == (0, 2)
    # with the render metric and the input read whole, level 0 is fetched back from the bucket
    # and scored against the input
    s = backfill.run(backfill.build_parser().parse_args(
        [*args, "--render-metric", "--force", "--include", "big.ply", "--memory-budget", "64"]))
    assert (s["ok"], s["failed"]) == (1, 0), s
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix="lodout/_manifest/")["Contents"]
    rows = [r for o in listing if o["Key"].endswith(".parquet")
            for r in pq.read_table(io.BytesIO(store.get(f"s3://{BUCKET}/{o['Key']}"))).to_pylist()
            if r["run_id"] == s["run_id"]]
    assert len(rows) == 1 and 20.0 < rows[0]["render_psnr"] <= 100.0 and rows[0]["seconds_render"] > 0, rows


def _first_part(client) -> str:
    """The name of the manifest object of the first run under lodout/_manifest/."""
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix="lodout/_manifest/")
    return sorted(o["Key"] for o in listing["Contents"] if o["Key"].endswith(".parquet"))[0].rsplit("/", 1)[1]


def test_a_key_that_climbs_out_of_the_input_becomes_a_failed_row(s3, local_ray, tmp_path):
    """An S3 key such as in2/../../escape.ply with a local --output: its row says UnsafeName,
    nothing is written outside --output, and the other scene is compressed."""
    from ray_jobs.manifest import read_manifest

    _, client = s3
    good = scene_files(good=1)["scene_0.ply"]
    client.put_object(Bucket=BUCKET, Key="in2/scene_0.ply", Body=good)
    client.put_object(Bucket=BUCKET, Key="in2/../../escape.ply", Body=good)
    out = tmp_path / "deep" / "out"
    args = backfill.build_parser().parse_args(["--input", f"s3://{BUCKET}/in2/", "--output", str(out),
                                               "--max-retries", "1"])
    s = backfill.run(args)
    assert (s["ok"], s["failed"]) == (1, 1)
    rows = read_manifest(Store(), str(out / "_manifest")).to_pylist()
    bad = [r for r in rows if r["status"] == "failed"]
    assert len(bad) == 1 and bad[0]["error_class"] == "UnsafeName" and "outside --output" in bad[0]["error_message"]
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert all(w.startswith("deep/out/") for w in written) and "deep/out/scene_0.sog" in written


def test_edits_change_the_settings_hash_and_are_recorded(s3, local_ray):
    """A scene with NaN splats fails by default; with --invalid drop and a rotation the settings
    hash changes, so a re-run redoes both scenes, and each row says what was applied and dropped;
    the same edits again skip them."""
    import numpy as np

    from sogs_core.formats.ply.write import ply_bytes

    from .conftest import make_scene

    _, client = s3
    broken = make_scene(1200, 1, seed=41)
    broken.means[[5, 17, 300]] = np.nan
    client.put_object(Bucket=BUCKET, Key="in3/clean.ply", Body=ply_bytes(make_scene(1300, 1, seed=40)))
    client.put_object(Bucket=BUCKET, Key="in3/broken.ply", Body=ply_bytes(broken))

    def run3(*extra: str) -> dict:
        args = backfill.build_parser().parse_args(
            ["--input", f"s3://{BUCKET}/in3/", "--output", f"s3://{BUCKET}/out3/", "--max-retries", "1", *extra])
        return backfill.run(args)

    first = run3()
    assert (first["ok"], first["failed"]) == (1, 1)
    edited = run3("--invalid", "drop", "--rotate", "0,0,180")
    assert edited["settings_hash"] != first["settings_hash"] and (edited["ok"], edited["skipped"]) == (2, 0)
    rows = {r["input_uri"].rsplit("/", 1)[1]: r for r in _rows_under(client, "out3/_manifest/", edited["run_id"])}
    assert all(r["edits"] == "--invalid drop --rotate 0,0,180" for r in rows.values())
    broken_row = rows["broken.ply"]
    assert broken_row["dropped_invalid"] == 3 and broken_row["splats"] + broken_row["dropped_invisible"] == 1197
    assert rows["clean.ply"]["dropped_invalid"] == 0 and rows["clean.ply"]["dropped_filter"] == 0
    again = run3("--invalid", "drop", "--rotate", "0,0,180")
    assert (again["ok"], again["skipped"]) == (0, 2)
