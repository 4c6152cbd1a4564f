"""`sogs-cluster report`: the HTML page holds the right totals and every failure's message, and
loads nothing from the network."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest

from ray_jobs.manifest import ManifestWriter, empty_row
from ray_jobs.storage import Store

from .conftest import ROOT


class Page(HTMLParser):
    """Tables as lists of rows of cell texts, plus what the page references."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None
        self.refs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "href") and v:
                self.refs.append(v)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def _row(i: int, status: str, t0: dt.datetime, **kw) -> dict:
    r = empty_row()
    r.update(run_id="20261124T100000Z-abc123", input_uri=f"s3://b/in/scene_{i}.ply", input_bytes=1_000_000,
             input_etag="e", input_format="ply", output_uri=f"s3://b/out/scene_{i}.sog", status=status,
             attempts=1, node="n1/aaaa", gpu="NVIDIA H100", settings_hash="h-bundle",
             started_at=t0 + dt.timedelta(seconds=10 * i), finished_at=t0 + dt.timedelta(seconds=10 * i + 8))
    if status == "ok":
        r.update(splats=100_000 * (i + 1), sh_degree=3, output_bytes=100_000, ratio=10.0,
                 fid_position_max_steps=0.5, fid_rotation_max_deg=0.4, fid_opacity_max_error=0.0019,
                 fid_log_scale_max_error=0.05, fid_f_dc_rmse=0.01, fid_f_rest_rmse=0.02)
        for s, v in (("read", 0.2), ("sort", 0.1), ("cluster", 0.3), ("quantize", 0.2), ("encode", 0.5),
                     ("write", 0.05), ("total", 1.35 + i)):
            r[f"seconds_{s}"] = v
    r.update(kw)
    return r


@pytest.fixture
def manifest(tmp_path):
    t0 = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.timezone.utc)
    rows = [_row(i, "ok", t0) for i in range(5)]
    rows += [_row(5, "failed", t0, error_class="PlyError", error_message="scene_5.ply: truncated body <here>"),
             _row(6, "failed", t0, error_class="SceneTimeout", error_message="did not finish within 600 s",
                  attempts=3),
             _row(7, "skipped", t0, attempts=0)]
    older = _row(0, "ok", t0 - dt.timedelta(days=1), run_id="20261123T100000Z-old000")
    w = ManifestWriter(Store(), str(tmp_path / "_manifest"), "20261124T100000Z-abc123", compact_rows=3)
    for r in rows:
        w.add(r)
    assert not w.close()
    ManifestWriter(Store(), str(tmp_path / "_manifest"), "20261123T100000Z-old000").add(older)
    return tmp_path / "_manifest"


def _report(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sogs_cli.main", "report", *args], capture_output=True, text=True,
                          cwd=ROOT)


def test_report_totals_failures_and_no_network(manifest, tmp_path):
    r = _report(str(manifest), "-o", str(tmp_path / "r.html"))
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "r.html").read_text()
    page = Page()
    page.feed(text)
    totals = {row[0]: row[1] for row in page.tables[0][1:]}
    assert (totals["scenes"], totals["ok"], totals["skipped"], totals["failed"]) == ("8", "5", "1", "2")
    assert totals["input bytes (ok)"] == "5,000,000" and totals["output bytes (ok)"] == "500,000"
    assert totals["overall ratio"] == "10.00x"
    assert totals["wall time"] == "68.0 s"   # first start 10:00:00, last worked-on end 10:01:08 (skipped rows excluded)
    failures = next(t for t in page.tables if t[0][:2] == ["scene", "error class"])
    assert {row[1]: row[2] for row in failures[1:]} == {
        "PlyError": "scene_5.ply: truncated body <here>", "SceneTimeout": "did not finish within 600 s"}
    assert [row[3] for row in failures[1:] if row[1] == "SceneTimeout"] == ["3"]
    assert "script" not in page.tags and not [u for u in page.refs if "//" in u]
    assert text.count("<svg") == 4                   # throughput, stages, ratio, fidelity
    assert "20261123T100000Z-old000" not in text     # the latest run only, by default


def test_report_of_all_runs_and_a_missing_run(manifest, tmp_path):
    r = _report(str(manifest), "--all", "-o", str(tmp_path / "all.html"))
    assert r.returncode == 0
    page = Page()
    page.feed((tmp_path / "all.html").read_text())
    assert {row[0]: row[1] for row in page.tables[0][1:]}["scenes"] == "9"
    r = _report(str(manifest), "--run", "nope")
    assert r.returncode == 2 and "no run 'nope'" in r.stderr and "Traceback" not in r.stderr
    r = _report(str(tmp_path / "empty"))
    assert r.returncode == 2 and "no manifest rows" in r.stderr


def test_report_renders_in_a_browser_with_no_console_errors(manifest, tmp_path):
    """The page opened in headless Chromium: a screenshot with something on it, and not one
    console message (the page runs no script, so any would be an error)."""
    from PIL import Image

    from .browser import ensure_chromium

    assert _report(str(manifest), "-o", str(tmp_path / "r.html")).returncode == 0
    shot = tmp_path / "shot.png"
    r = subprocess.run([ensure_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                        "--window-size=1100,2400", "--enable-logging=stderr", "--v=0",
                        f"file://{tmp_path / 'r.html'}"], capture_output=True, text=True, timeout=180)
    assert shot.is_file(), r.stderr[-2000:]
    assert [ln for ln in r.stderr.splitlines() if ":CONSOLE" in ln] == []
    img = np.asarray(Image.open(shot).convert("L"))
    assert (img < 128).mean() > 0.01            # text and plots drawn, not a blank page


def test_report_lists_the_lowest_render_psnrs(manifest, tmp_path):
    """With render_psnr in the rows: a PSNR plot and the 20 lowest scenes, lowest first, plus every
    scene below --min-psnr beyond them; without (the fixture's rows), nothing of it."""
    from ray_jobs.report import write_report

    plain = open(write_report(Store(), str(manifest), out=str(tmp_path / "plain.html"))).read()
    assert "render PSNR" not in plain and plain.count("<svg") == 4

    t0 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)
    run = "20261125T100000Z-psnr01"
    # 25 scenes, PSNR 40 + i/2 dB; a floor of 52 dB puts the 24 lowest below it
    rows = [_row(i, "ok", t0, run_id=run, render_psnr=40.0 + i / 2, render_psnr_worst_view=38.0 + i / 2,
                 render_ssim=0.99, seconds_render=0.4, render_below_min=40.0 + i / 2 < 52.0) for i in range(25)]
    rows.append(_row(25, "ok", t0, run_id=run))                              # no metric (a streamed scene)
    rows.append(_row(26, "failed", t0, run_id=run, error_class="PlyError", error_message="bad"))
    w = ManifestWriter(Store(), str(tmp_path / "m2"), run)
    w.add_many(rows)
    assert not w.close()
    text = open(write_report(Store(), str(tmp_path / "m2"), out=str(tmp_path / "psnr.html"))).read()
    assert text.count("<svg") == 5 and "Render PSNR per scene" in text
    page = Page()
    page.feed(text)
    table = next(t for t in page.tables if t[0][:2] == ["scene", "render PSNR (dB)"])
    assert table[0] == ["scene", "render PSNR (dB)", "worst view (dB)", "SSIM", "splats", "below min"]
    assert len(table) - 1 == 24                          # the 20 lowest, then the 4 more below the floor
    assert [row[0] for row in table[1:]] == [f"s3://b/in/scene_{i}.ply" for i in range(24)]
    assert table[1][1:] == ["40.00", "38.00", "0.9900", "100,000", "yes"]
    assert {row[5] for row in table[1:]} == {"yes"}
    assert "24 scene(s) below --min-psnr" in text and "--force --include" in text


def test_report_of_many_scenes_summarises(tmp_path):
    """20,000 rows, 400 of them failed: the page lists the first failures and counts the rest per
    class, and its plots stay small (curves thinned, point clouds one embedded image)."""
    from ray_jobs.manifest import rows_object
    from ray_jobs.report import FAILURE_ROWS

    t0 = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.timezone.utc)
    rows = [_row(i, "failed", t0, error_class=("PlyError", "SceneTimeout")[(i // 50) % 2], error_message=f"bad {i}")
            if i % 50 == 0 else _row(i, "ok", t0) for i in range(20_000)]
    folder = tmp_path / "_manifest"
    folder.mkdir()
    for k in range(0, len(rows), 5000):
        (folder / f"run-20261124T100000Z-abc123-part-{k // 5000:05d}.parquet").write_bytes(rows_object(rows[k:k + 5000]))
    r = _report(str(folder), "-o", str(tmp_path / "big.html"))
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "big.html").read_text()
    assert len(text) < 2_000_000
    page = Page()
    page.feed(text)
    assert {row[0]: row[1] for row in page.tables[0][1:]}["failed"] == "400"
    by_class = next(t for t in page.tables if t[0] == ["error class", "scenes"])
    assert {row[0]: row[1] for row in by_class[1:]} == {"PlyError": "200", "SceneTimeout": "200"}
    failures = next(t for t in page.tables if t[0][:2] == ["scene", "error class"])
    assert len(failures) - 1 == FAILURE_ROWS


def test_report_does_not_import_torch(manifest, tmp_path):
    """An SRE's report reads a manifest and draws it: it pays neither torch's import (~1 s) nor
    anything else of the compressor (the bounds it draws live in `formats.sog.bounds`)."""
    code = ("import sys; from sogs_cli.main import main; "
            f"main(['report', {str(manifest)!r}, '-o', {str(tmp_path / 'r.html')!r}]); print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0 and r.stdout.split()[-1] == "False", r.stdout + r.stderr
    assert (tmp_path / "r.html").read_text().count("<svg") == 4
