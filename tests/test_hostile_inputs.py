"""Hostile files: names that a file holds never reach outside its root (a streamed SOG's
`filenames` that climb out, are absolute or follow a link out are refused before anything is
opened), and a small file cannot make us allocate what its own header cannot need (a ZIP entry
that inflates far past a scene's images, a WebP that declares more texels than its scene has)."""
from __future__ import annotations

import json
import os

import pytest

from sogs_core.formats.lod_meta.read import read_lod_level, read_lod_meta
from sogs_core.formats.names import path_inside, unsafe_relative_name
from sogs_core.formats.ply.write import ply_bytes
from sogs_core.formats.sog.package import write_sog
from sogs_core.model.errors import SogFormatError
from sogs_core.pipeline.compressor import Compressor

from .conftest import make_scene
from .format_writers import spz_v2_bytes
from .hostile_files import small_sog, spz_with_leftover, wide_webp_folder, zip_bomb_sog


def test_relative_name_rules():
    for ok in ("0_0/meta.json", "meta.json", "a/b/c.webp"):
        assert unsafe_relative_name(ok) is None
    for bad in ("../outside/meta.json", "/etc/passwd", "a/../../b", "a//b", "./a", "C:/x", "a\\..\\b", "", None, 3):
        assert unsafe_relative_name(bad) is not None, bad


def _streamed_index(folder, filenames) -> str:
    """A one-leaf lod-meta.json in `folder` whose single level reads filenames[0]."""
    meta = {"version": 1, "lodLevels": 1, "count": 10, "counts": [10], "filenames": filenames,
            "tree": {"bound": {"min": [0, 0, 0], "max": [1, 1, 1]},
                     "lods": {"0": {"file": 0, "offset": 0, "count": 10}}}}
    path = os.path.join(folder, "lod-meta.json")
    with open(path, "w") as f:
        json.dump(meta, f)
    return path


@pytest.fixture(scope="module")
def outside_scene(tmp_path_factory):
    """A valid SOG folder outside the streamed SOG's folder: reading it would succeed."""
    root = tmp_path_factory.mktemp("hostile")
    pkg = Compressor(device="cpu").encode(make_scene(10, 0, seed=5), {}, with_fidelity=False)[0]
    write_sog(pkg, str(root / "outside" / "scene") + "/")
    (root / "inside").mkdir()
    return root


@pytest.mark.parametrize("name", ["../outside/scene/meta.json", "/etc/passwd", "x/../../outside/scene/meta.json"])
def test_streamed_filenames_that_climb_out_are_refused_unopened(outside_scene, name):
    index = _streamed_index(str(outside_scene / "inside"), [name])
    with pytest.raises(SogFormatError, match="unsafe file name") as info:
        read_lod_level(index)
    assert "root:" not in str(info.value)            # nothing of /etc/passwd in the message
    with pytest.raises(SogFormatError, match="unsafe file name"):
        read_lod_meta(index)


def test_a_link_out_of_the_folder_is_refused(outside_scene):
    inside = outside_scene / "inside"
    link = inside / "linked"
    if not link.exists():
        os.symlink(outside_scene / "outside", link)
    index = _streamed_index(str(inside), ["linked/scene/meta.json"])
    assert path_inside(str(inside), "linked/scene/meta.json")[0] is None
    with pytest.raises(SogFormatError, match="leads outside"):
        read_lod_level(index)
    # the same file inside the folder is read
    os.makedirs(inside / "own", exist_ok=True)
    write_sog(Compressor(device="cpu").encode(make_scene(10, 0, seed=5), {}, with_fidelity=False)[0],
              str(inside / "own" / "scene") + "/")
    assert read_lod_level(_streamed_index(str(inside), ["own/scene/meta.json"])).count == 10


def test_a_zip_entry_that_inflates_past_its_scene_is_refused_before_inflating():
    from sogs_core.formats.sog.read import read_sog_bytes

    data = zip_bomb_sog(40 << 20)                     # 40 MB of zeros: a few dozen kB deflated
    assert len(data) < 1 << 20
    with pytest.raises(SogFormatError, match="means_l.webp inflates to 41,943,040 bytes") as info:
        read_sog_bytes(data, "bomb.sog")
    assert "BytesIO" not in str(info.value)


def test_a_webp_declaring_more_texels_than_its_scene_is_refused_from_its_header(tmp_path):
    from sogs_core.formats.sog.read import read_sog

    folder = tmp_path / "wide"
    wide_webp_folder(str(folder))                     # 90,000 texels for a 10-splat scene
    with pytest.raises(SogFormatError, match="declares 300 x 300 texels"):
        read_sog(str(folder))
    # the same scene with its own images reads
    (folder / "scales.webp").write_bytes(small_sog()[1]["scales.webp"])
    assert read_sog(str(folder)).count == 10


def test_random_bytes_under_the_manifest_prefix_are_skipped_with_a_warning_naming_them(tmp_path, capsys):
    """A run and the report read the manifest past an object that is no manifest: one warning
    line names it, and the good rows are all there."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ray_jobs.manifest import SCHEMA, empty_row, read_manifest
    from ray_jobs.storage import Store

    prefix = tmp_path / "_manifest"
    prefix.mkdir()
    row = empty_row()
    row.update(run_id="r1", input_uri="/in/a.ply", status="ok", settings_hash="h")
    pq.write_table(pa.Table.from_pylist([row], schema=SCHEMA), prefix / "run-r1-part-00000.parquet")
    (prefix / "run-r2-part-00000.parquet").write_bytes(os.urandom(3000))
    table = read_manifest(Store(), str(prefix))
    assert table.num_rows == 1 and table.column("input_uri").to_pylist() == ["/in/a.ply"]
    err = capsys.readouterr().err
    assert "run-r2-part-00000.parquet" in err and "not a manifest rows object" in err and "Traceback" not in err


def test_an_input_deleted_after_listing_fails_at_once_as_vanished(tmp_path):
    """No retry can bring a deleted input back: one attempt, error_class InputVanished."""
    from ray_jobs.actors import SceneCompressor
    from sogs_core.settings import CompressSettings

    actor = SceneCompressor("cpu", CompressSettings(), "bundle", "r1", "h", max_retries=3)
    gone = str(tmp_path / "gone.ply")
    row = actor.process({"input_uri": gone, "rel": "gone.ply", "size": 10, "etag": "x",
                         "output_uri": str(tmp_path / "out" / "gone.sog")})
    assert row["status"] == "failed" and row["error_class"] == "InputVanished" and row["attempts"] == 1
    assert "deleted after it was listed" in row["error_message"]
    assert not (tmp_path / "out").exists()


def test_the_actor_makes_its_row_durable_so_a_dead_driver_loses_no_scene(tmp_path):
    """The actor writes the scene's row beside the manifest right after its output: when the
    driver dies before recording it, the re-run skips the scene instead of compressing it again;
    when the driver records it, compaction folds the actor's object into a part (one row)."""
    from ray_jobs import backfill
    from ray_jobs.actors import SceneCompressor
    from ray_jobs.manifest import ManifestWriter, read_manifest
    from ray_jobs.storage import Store
    from sogs_core.formats.ply.write import ply_bytes

    from .conftest import make_scene

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.ply").write_bytes(ply_bytes(make_scene(800, 0, seed=2)))
    argv = ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--device", "cpu"]
    args = backfill.build_parser().parse_args(argv)
    args.manifest = str(tmp_path / "out" / "_manifest")
    shash = backfill.settings_hash(args)
    tasks, _, _ = backfill.plan(Store(), args, shash, "r1")
    actor = SceneCompressor("cpu", backfill.run_settings(args), "bundle", "r1", shash, 1, manifest=args.manifest)
    row = actor.process(tasks[0])                 # ... and the driver dies before it records the row
    actor.flush_rows()
    assert row["status"] == "ok" and os.path.isfile(row["journal_uri"])
    again = backfill.run(backfill.build_parser().parse_args(argv + ["--dry-run"]))
    assert (again["todo"], again["skipped"]) == (0, 1)
    # a driver that lives adopts the actor's object: compacted into a part, the object gone
    writer = ManifestWriter(Store(), args.manifest, "r1", compact_rows=1)
    journal = row.pop("journal_uri")
    writer.add(dict(row, input_uri="other"))
    writer.adopt(row, journal)
    assert not os.path.exists(journal)
    rows = read_manifest(Store(), args.manifest).to_pylist()
    assert sorted(r["input_uri"] for r in rows) == sorted(["other", tasks[0]["input_uri"]])


def test_a_row_carries_the_etag_of_the_bytes_it_compressed(tmp_path):
    """An input rewritten between the listing and the read: the row holds the new version's ETag,
    so the next run sees that version done instead of keeping a stale one."""
    from ray_jobs import backfill
    from ray_jobs.actors import SceneCompressor
    from ray_jobs.storage import Store
    from sogs_core.formats.ply.write import ply_bytes

    src = tmp_path / "in" / "a.ply"
    src.parent.mkdir()
    src.write_bytes(ply_bytes(make_scene(700, 0, seed=3)))
    argv = ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--device", "cpu"]
    args = backfill.build_parser().parse_args(argv)
    args.manifest = str(tmp_path / "out" / "_manifest")
    shash = backfill.settings_hash(args)
    tasks, _, _ = backfill.plan(Store(), args, shash, "r1")
    listed = tasks[0]["etag"]
    src.write_bytes(ply_bytes(make_scene(900, 0, seed=4)))       # rewritten after the listing
    st = os.stat(src)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    actor = SceneCompressor("cpu", backfill.run_settings(args), "bundle", "r1", shash, 1, manifest=args.manifest)
    row = actor.process(tasks[0])
    actor.flush_rows()
    now = Store().list(str(tmp_path / "in"))[0].etag
    assert row["status"] == "ok" and row["splats"] + row["dropped_invisible"] == 900
    assert row["input_etag"] == now != listed
    again = backfill.run(backfill.build_parser().parse_args(argv + ["--dry-run"]))
    assert (again["todo"], again["skipped"]) == (0, 1)


def test_a_gzip_spz_is_read_no_further_than_its_header_needs():
    """Bytes past what the header's count needs are refused as left over, not inflated."""
    from sogs_core.formats import read_scene
    from sogs_core.formats.spz import SpzError

    assert read_scene(spz_v2_bytes(make_scene(300, 0, seed=5)), "a.spz").splats.count == 300
    with pytest.raises(SpzError, match="left over"):
        read_scene(spz_with_leftover(), "padded.spz")


def test_a_scene_above_the_cap_is_refused_before_it_is_read(tmp_path, monkeypatch):
    """--max-scene-splats (or SOGS_MAX_SPLATS) refuses a scene by its header's count, in every
    format, with one line that says how to raise the cap."""
    from sogs_core.formats import read_scene
    from sogs_core.formats.ply.write import ply_bytes
    from sogs_core.model.errors import SplatFileError

    from .format_writers import spz_v2_bytes, splat_bytes
    from .test_cli import cli

    s = make_scene(300, 0, seed=6)
    monkeypatch.setenv("SOGS_MAX_SPLATS", "299")
    for name, data in (("a.ply", ply_bytes(s)), ("a.spz", spz_v2_bytes(s)), ("a.splat", splat_bytes(s))):
        with pytest.raises(SplatFileError, match="300 splats: more than the 299"):
            read_scene(data, name)
    monkeypatch.setenv("SOGS_MAX_SPLATS", "300")
    assert read_scene(ply_bytes(s), "a.ply").splats.count == 300
    monkeypatch.delenv("SOGS_MAX_SPLATS")
    (tmp_path / "a.ply").write_bytes(ply_bytes(s))
    r = cli("compress", str(tmp_path / "a.ply"), str(tmp_path / "a.sog"), "-q", "--device", "cpu",
            "--max-scene-splats", "100")
    assert r.returncode == 2 and "--max-scene-splats" in r.stderr and len(r.stderr.strip().splitlines()) == 1


#: runs argv[1:] and prints its exit code and peak RSS (MB): a process this small measures the
#: child alone (a child's peak RSS counts the pages of whoever forked it, here a few MB)
_MEASURE = ("import os, subprocess, sys\n"
            "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
            "_, status, usage = os.wait4(p.pid, 0)\n"
            "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024)\n")


def _peak(*cmd: str) -> tuple[int, float]:
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "sogs_cli.main", *cmd],
                         capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=root))
    code, mb = out.stdout.split()
    return int(code), float(mb)


def test_hostile_containers_cost_no_more_memory_than_a_small_scene(tmp_path):
    """A .sog whose entry inflates to 512 MB, a 13,000^2 WebP for 10 splats and a .ksplat with
    2^28-splat buckets are refused with the memory of compressing a tiny good scene (the
    interpreter and torch), far below what inflating or decoding any of them would take."""
    from .hostile_files import ksplat_huge_bucket

    (tmp_path / "bomb.sog").write_bytes(zip_bomb_sog(512 << 20))
    wide_webp_folder(str(tmp_path / "wide"), side=13_000)
    (tmp_path / "bucket.ksplat").write_bytes(ksplat_huge_bucket())
    (tmp_path / "good.ply").write_bytes(ply_bytes(make_scene(500, 0, seed=1)))
    _, baseline = _peak("compress", "-q", "--device", "cpu", str(tmp_path / "good.ply"), str(tmp_path / "g.sog"))
    for name in ("bomb.sog", "wide", "bucket.ksplat"):
        code, mb = _peak("compress", "-q", "--device", "cpu", str(tmp_path / name), str(tmp_path / "o.sog"))
        assert code == 2 and mb < baseline + 100, (name, code, mb, baseline)


def test_an_actor_row_written_after_its_compaction_is_swept_at_close(tmp_path):
    """An actor's row thread can write its object after the driver compacted the row and deleted
    the (not yet written) name: close deletes such leftovers, so the folder read as one Parquet
    dataset holds each row once."""
    import pyarrow.parquet as pq

    from ray_jobs.manifest import ManifestWriter, actor_row_uri, empty_row, rows_object
    from ray_jobs.storage import Store

    prefix = str(tmp_path / "_manifest")
    writer = ManifestWriter(Store(), prefix, "r1", compact_rows=2)
    rows, uris = [], []
    for i in range(2):
        row = empty_row()
        row.update(run_id="r1", input_uri=f"s{i}.ply", status="ok")
        rows.append(row)
        uris.append(actor_row_uri(prefix, "r1", "t", i))
        writer.adopt(row, uris[-1])                  # compacted at the second: the objects do not exist yet
    for row, uri in zip(rows, uris):
        Store().put(uri, rows_object([row]))         # ... and are written late
    assert writer.close() == []
    assert not any(os.path.exists(u) for u in uris)
    assert sorted(pq.read_table(prefix)["input_uri"].to_pylist()) == ["s0.ply", "s1.ply"]
