"""The console script as an artist uses it: exit codes, one-line errors, outputs that decode."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from sogs_core.formats.ply.write import write_ply

from .conftest import ROOT, make_scene


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "sogs_cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=600, **kw)


@pytest.fixture(scope="module")
def ply(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    write_ply(d / "in.ply", make_scene(1500, 1))
    return d / "in.ply"


def test_compress_decompress_info_compare(tmp_path, ply):
    r = cli("compress", str(ply), str(tmp_path / "o.sog"), "--device", "cpu", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    # stage progress on stderr: each stage's end, in seconds since the scene began (a stage that
    # reports only its end once printed 0.00 s), ascending and within the scene's total
    ends = [float(x) for x in re.findall(r"done at ([0-9.]+)s", r.stderr)]
    assert len(ends) >= 3 and ends == sorted(ends) and ends[-1] > 0 and ends[-1] <= summary["seconds"]["total"] + 0.5
    # at the default level the splats stored with opacity 0 are left out, and counted
    dropped = summary["edits"]["dropped_invisible"]
    assert summary["count"] == 1500 - dropped and summary["fidelity"]["unmatched"] == 0
    r = cli("compress", str(ply), str(tmp_path / "folder") + "/", "--device", "cpu", "-q")
    assert r.returncode == 0 and os.path.isfile(tmp_path / "folder" / "meta.json")
    # -q without --json shows no fidelity, so none is measured: the same bytes, nothing printed
    r = cli("compress", str(ply), str(tmp_path / "quiet.sog"), "--device", "cpu", "-q")
    assert r.returncode == 0 and r.stdout.splitlines()[-1].startswith("stages:") and "rotation_max_deg" not in r.stdout
    assert (tmp_path / "quiet.sog").read_bytes() == (tmp_path / "o.sog").read_bytes()
    r = cli("decompress", str(tmp_path / "o.sog"), str(tmp_path / "back.ply"))
    assert r.returncode == 0, r.stderr
    info = json.loads(cli("info", str(tmp_path / "o.sog")).stdout)
    assert info["version"] == 2 and info["count"] == 1500 - dropped and info["sh_bands"] == 1
    r = cli("compare", str(ply), str(tmp_path / "back.ply"), "--json", "--size", "48x48", "--views", "2")
    rep = json.loads(r.stdout)
    assert rep["unmatched"] == 0 and rep["rotation_max_deg"] <= 1.5
    assert rep["count_decoded"] == 1500 - dropped and rep.get("missing_max_opacity", 0.0) < 2 / 255
    # the render metric runs by default (our rasterizer, no browser)
    assert len(rep["render"]["views"]) == 2 and rep["render"]["size"] == "48x48"
    assert 20.0 < rep["render"]["render_psnr"] <= 100.0
    r = cli("compare", str(ply), str(ply), "--json", "--size", "32x32", "--views", "1")
    assert json.loads(r.stdout)["render"]["render_psnr"] == 100.0          # identical: the cap
    r = cli("compare", str(ply), str(tmp_path / "back.ply"), "--json", "--render", "off")
    assert "render" not in json.loads(r.stdout)


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"hello")
    r = cli("compress", str(bad), str(tmp_path / "o.sog"), "--device", "cpu")
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("sogs-cluster: error")]
    assert lines == [f"sogs-cluster: error: {bad}: not a PLY file (no 'ply' magic at the start)"]
    assert "Traceback" not in r.stderr
    r = cli("decompress", str(tmp_path / "missing.sog"), str(tmp_path / "x.ply"))
    assert r.returncode == 2 and "no such file" in r.stderr
    r = cli("compress", str(bad), str(tmp_path / "o.zip"))
    assert r.returncode == 2 and "must end in .sog" in r.stderr


def test_help_explains():
    r = cli("compress", "--help")
    assert r.returncode == 0 and "--sh-bands" in r.stdout and "--iterations" in r.stdout


def test_torch_imported_frozen_in_a_fresh_process():
    """The CLI's start: torch's objects frozen out of the collector's sweeps, the collector still on;
    a process that already has torch keeps its collector as it is."""
    code = ("import gc, sys; from sogs_cli.startup import import_torch_frozen; import_torch_frozen(); "
            "n = gc.get_freeze_count(); import_torch_frozen(); "
            "print(n > 100000, 'torch' in sys.modules, gc.isenabled(), gc.get_freeze_count() == n)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0 and r.stdout.split() == ["True"] * 4, r.stdout + r.stderr


def test_synth_and_info_of_a_sog_do_not_import_torch(tmp_path, ply):
    """Commands that need no torch do not pay its import (~1 s): synth writes scenes with numpy,
    and info of a SOG reads its container only."""
    assert cli("compress", str(ply), str(tmp_path / "o.sog"), "--device", "cpu", "-q").returncode == 0
    for args in (["synth", str(tmp_path / "s"), "--count", "1", "--n", "50"], ["info", str(tmp_path / "o.sog")]):
        code = f"import sys; from sogs_cli.main import main; main({args!r}); print('torch' in sys.modules)"
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, PYTHONPATH=ROOT))
        assert r.returncode == 0 and r.stdout.split()[-1] == "False", args[0] + r.stdout + r.stderr
    assert json.loads(cli("info", str(tmp_path / "o.sog")).stdout)["version"] == 2


def test_the_process_server_starts_early_only_where_processes_may_write(tmp_path):
    """`_may_write_with_processes`: a streamed compress with --processes above 1, or auto with a
    PLY large enough to hold a scene that auto writes with several processes; never a single
    SOG, --processes 1, or a PLY too small for that many rows."""
    from sogs_cli.main import PLY_ROW_MIN_BYTES, _may_write_with_processes, build_parser
    from sogs_core.settings import AUTO_PROCESSES_MIN_SPLATS

    small, big = tmp_path / "small.ply", tmp_path / "big.ply"
    small.write_bytes(b"\0" * 1000)
    with open(big, "wb") as f:                  # sparse: the size is what is read
        f.truncate(AUTO_PROCESSES_MIN_SPLATS * PLY_ROW_MIN_BYTES)

    def may(*argv: str) -> bool:
        return _may_write_with_processes(build_parser().parse_args(["compress", *argv]))

    out = str(tmp_path / "o" / "lod-meta.json")
    assert may(str(big), out)
    assert may(str(big), str(tmp_path / "o"), "--streamed")
    assert may(str(small), out, "--processes", "3")
    assert not may(str(small), out)
    assert not may(str(big), out, "--processes", "1")
    assert not may(str(big), str(tmp_path / "o.sog"))


def test_writing_processes_are_forks_of_the_process_server():
    """Where the platform has a fork server, the writing processes come from it (with the
    library imported there, `process_server.PRELOAD`), never spawned afresh; elsewhere spawned."""
    import multiprocessing

    from sogs_core.pipeline.process_server import writers_context

    has_server = "forkserver" in multiprocessing.get_all_start_methods()
    assert writers_context().get_start_method() == ("forkserver" if has_server else "spawn")
