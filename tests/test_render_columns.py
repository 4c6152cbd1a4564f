"""The backfill's render metric (issue 28): `--render-metric` fills render_psnr, render_ssim,
render_psnr_worst_view and seconds_render in the manifest (null for a streamed scene), `--min-psnr`
marks exactly the scenes below it (render_below_min, the summary's below_min_psnr, one log line
each) and a re-run still skips them; the report lists the lowest PSNRs; manifests written before
these columns still read.

One local Ray (no GPU) and one CPU actor: the actors are other processes, so the metric runs at
what `RenderMetricSettings.for_device` gives a CPU (4 views at 128 x 128); the scenes are small
and SH-free to keep that and the k-means cheap."""
from __future__ import annotations

import io
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ray_jobs import backfill
from ray_jobs.manifest import RENDER, SCHEMA, latest_settled, read_manifest
from ray_jobs.report import write_report
from ray_jobs.storage import Store

from .conftest import make_scene
from .ray_helpers import fast_env, write_local
from .test_report import Page

#: rel path -> splats; the three small ones are whole scenes, `huge.ply` is streamed
SCENES = {"a.ply": 900, "b.ply": 1600, "deep/c.ply": 2800, "huge.ply": 6000}
STREAMED = ("--streamed-above", "5000", "--lod-levels", "1", "--chunk-count", "2", "--chunk-extent", "3",
            "--chunk-min", "1", "--memory-budget", "0")


@pytest.fixture(scope="module")
def local_ray():
    import ray

    saved = {k: os.environ.get(k) for k in (*fast_env(), "RAY_ADDRESS")}
    os.environ.update(fast_env())
    os.environ.pop("RAY_ADDRESS", None)
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _args(inp, out, *extra: str):
    return backfill.build_parser().parse_args(
        ["--input", str(inp), "--output", str(out), "--device", "cpu", "--actors", "1", "--max-retries", "0",
         *STREAMED, *extra])


def _rows(out, run_id: str) -> dict[str, dict]:
    table = read_manifest(Store(), str(out / "_manifest"))
    return {r["input_uri"].split("/in/", 1)[1]: r for r in table.to_pylist() if r["run_id"] == run_id}


def test_render_metric_columns_min_psnr_and_the_report(local_ray, tmp_path, capsys):
    from sogs_core.formats.ply.write import ply_bytes

    inp, out = tmp_path / "in", tmp_path / "out"
    write_local(str(inp), {rel: ply_bytes(make_scene(n, 0, seed=500 + i)) for i, (rel, n) in enumerate(SCENES.items())})

    # first run: the metric on, no floor
    s = backfill.run(_args(inp, out, "--render-metric"))
    assert (s["ok"], s["failed"]) == (4, 0), s
    assert "below_min_psnr" not in s
    for part in (out / "_manifest").iterdir():
        assert pq.read_schema(part).equals(SCHEMA, check_metadata=False)
    rows = _rows(out, s["run_id"])
    whole = {rel: r for rel, r in rows.items() if rel != "huge.ply"}
    for rel, r in whole.items():
        # what was written and what was left out as invisible (opacity 0 at the level) add up
        assert r["status"] == "ok" and r["splats"] + r["dropped_invisible"] == SCENES[rel]
        assert 20.0 < r["render_psnr"] <= 100.0 and 0.9 < r["render_ssim"] <= 1.0, r
        assert r["render_psnr_worst_view"] <= r["render_psnr"]
        assert r["seconds_render"] > 0 and r["render_below_min"] is None
    streamed = rows["huge.ply"]
    assert streamed["status"] == "ok" and streamed["lod_levels"] == 1
    # read by ranges (--memory-budget 0): the metric, which renders the input whole, is skipped
    assert all(streamed[k] is None for k in (*RENDER, "render_below_min", "seconds_render"))
    # read whole: its level 0 is scored against the input, like a single SOG
    s = backfill.run(_args(inp, out, "--render-metric", "--force", "--include", "huge.ply",
                           "--memory-budget", "64"))
    assert (s["ok"], s["failed"]) == (1, 0), s
    streamed = _rows(out, s["run_id"])["huge.ply"]
    assert streamed["lod_levels"] == 1 and 20.0 < streamed["render_psnr"] <= 100.0, streamed
    assert 0.9 < streamed["render_ssim"] <= 1.0 and streamed["render_psnr_worst_view"] <= streamed["render_psnr"]
    assert streamed["seconds_render"] > 0

    # a floor in the widest gap between two neighbouring scenes by PSNR: exactly the ones under
    # the gap are below it
    ranked = sorted(whole, key=lambda rel: whole[rel]["render_psnr"])
    psnrs = [whole[rel]["render_psnr"] for rel in ranked]
    gap, split = max((psnrs[i + 1] - psnrs[i], i + 1) for i in range(len(psnrs) - 1))
    # the scenes differ enough for a floor to split them (a re-run renders the same bytes alike)
    assert gap > 0.05, (ranked, psnrs)
    floor = (psnrs[split - 1] + psnrs[split]) / 2
    below = ranked[:split]
    capsys.readouterr()
    s = backfill.run(_args(inp, out, "--render-metric", "--min-psnr", f"{floor:.4f}", "--force",
                           "--exclude", "huge.ply"))
    assert (s["ok"], s["failed"], s["below_min_psnr"]) == (3, 0, len(below)), s
    rows = _rows(out, s["run_id"])
    assert set(rows) == set(whole)
    assert {rel for rel, r in rows.items() if r["render_below_min"]} == set(below)
    assert all(r["render_below_min"] is (r["render_psnr"] < floor) for r in rows.values())
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "below --min-psnr" in ln and "dB" in ln]
    assert len(lines) == len(below), lines
    for rel in below:
        line = next(ln for ln in lines if str(inp / rel) in ln)
        assert f"{rows[rel]['render_psnr']:.2f} dB" in line

    # the report: the PSNR plot and the lowest-PSNR table, worst first, the floor's marks in it
    page_text = open(s["report"]).read()
    assert page_text.count("<svg") == 5         # throughput, stages, ratio, fidelity, render PSNR
    page = Page()
    page.feed(page_text)
    table = next(t for t in page.tables if t[0][:2] == ["scene", "render PSNR (dB)"])
    assert table[0] == ["scene", "render PSNR (dB)", "worst view (dB)", "SSIM", "splats", "below min"]
    assert [row[0] for row in table[1:]] == [str(inp / rel) for rel in ranked]
    assert [row[5] for row in table[1:]] == ["yes"] * len(below) + ["no"] * (len(ranked) - len(below))
    assert table[1][1] == f"{rows[ranked[0]]['render_psnr']:.2f}" and table[1][4] == f"{rows[ranked[0]]['splats']:,}"

    # a re-run treats the scenes below the floor as done, like any ok scene
    s = backfill.run(_args(inp, out, "--render-metric", "--min-psnr", f"{floor:.4f}", "--dry-run"))
    assert (s["todo"], s["skipped"]) == (0, 4)


def test_min_psnr_without_the_render_metric_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        backfill.build_parser().parse_args(["--input", "a", "--output", "b", "--no-render-metric", "--min-psnr", "40"])
    assert exc.value.code == 2
    assert "--min-psnr needs the render metric" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        backfill.build_parser().parse_args(["--input", "a", "--output", "b", "--render-metric", "--min-psnr", "x"])
    args = backfill.build_parser().parse_args(["--input", "a", "--output", "b"])
    assert args.render_metric is None and args.min_psnr is None
    # unset: each actor decides by its device; --min-psnr alone turns it on everywhere
    assert backfill.render_metric_setting(args) is None
    floor = backfill.build_parser().parse_args(["--input", "a", "--output", "b", "--min-psnr", "40"])
    assert backfill.render_metric_setting(floor) is True
    off = backfill.build_parser().parse_args(["--input", "a", "--output", "b", "--no-render-metric"])
    assert backfill.render_metric_setting(off) is False
    # the metric changes no byte: it is not part of the settings hash
    on = backfill.build_parser().parse_args(["--input", "a", "--output", "b", "--render-metric", "--min-psnr", "40"])
    assert backfill.settings_hash(on) == backfill.settings_hash(args)


def test_a_manifest_from_before_the_render_columns_still_reads(tmp_path):
    """A part written without seconds_render, the render columns and render_below_min: read,
    settled and reported with those as nulls (and no render section in the report)."""
    import datetime as dt

    from .test_report import _row

    new = {"seconds_render", "render_below_min", *RENDER}
    old_schema = pa.schema([f for f in SCHEMA if f.name not in new])
    t0 = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.timezone.utc)
    rows = [{k: v for k, v in _row(i, "ok", t0, run_id="20261120T090000Z-old111").items() if k not in new}
            for i in range(3)]
    manifest = tmp_path / "_manifest"
    manifest.mkdir()
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=old_schema), buf)
    (manifest / "run-20261120T090000Z-old111-part-00000.parquet").write_bytes(buf.getvalue())

    table = read_manifest(Store(), str(manifest))
    assert table.schema.equals(SCHEMA, check_metadata=False) and len(table) == 3
    for r in table.to_pylist():
        assert all(r[k] is None for k in new) and r["seconds_total"] is not None
    assert len(latest_settled(table)) == 3
    text = open(write_report(Store(), str(manifest))).read()
    assert "Lowest render PSNR" not in text and text.count("<svg") == 4
