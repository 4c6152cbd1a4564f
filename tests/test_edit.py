"""Edits before compression (`sogs_core.edit`): each transform and filter against splat-transform's
own action on the same input (its output and ours decoded by it, within the quantization's
bounds), the rotation checked by rendering, `--invalid drop` removing exactly the invalid splats,
`--max-splats` meeting its budget, and the edits in the settings hash."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch

from sogs_core.edit.transform import ENGINE_FRAME, euler_quat, quat_matrix, transform_splats
from sogs_core.formats import read_scene, read_splats
from sogs_core.formats.ply.write import ply_bytes
from sogs_core.model.errors import EmptySceneError, PlyError
from sogs_core.model.splats import ATTRIBUTES, Splats
from sogs_core.pipeline.compressor import Compressor
from sogs_core.formats.sog.bounds import QUANTIZATION_BOUNDS
from sogs_core.pipeline.fidelity import fidelity
from sogs_core.render.cameras import View, views_around
from sogs_core.render.raster import Camera, render
from sogs_core.settings import CompressSettings, EditSettings

from . import splat_transform
from .conftest import make_scene, shared_path
from .test_cli import cli

LEICA = shared_path("scenes", "real_float", "leica-sofort-top8192.ply")


def _compress(src: str, out: str, edit: EditSettings):
    """Our output at level 100 (the nearest-code contract) with `edit` applied."""
    with Compressor(device="cpu", settings=CompressSettings(edit=edit), warm=False) as c:
        return c.compress(src, out)


def _within_bounds(theirs: Splats, ours: Splats, baseline: dict) -> dict:
    """Ours (decoded by splat-transform) against splat-transform's own edit: the core bounds for
    positions, rotations and opacity; scales and colours within what compressing their edited
    scene as it is loses (the codebooks are fitted per scene, so their bound is the scene's)."""
    rep = fidelity(theirs, ours)
    assert ours.count == theirs.count and rep["unmatched"] == 0
    assert rep["position_max_steps"] <= QUANTIZATION_BOUNDS["position_max_steps"] + 1e-3
    assert rep["rotation_max_deg"] <= QUANTIZATION_BOUNDS["rotation_max_deg"]
    assert rep["opacity_max_error"] <= QUANTIZATION_BOUNDS["opacity_max_error"] + 1e-6
    assert rep["log_scale_max_error"] <= baseline["log_scale_max_error"] * 1.05 + 1e-3
    assert rep["f_dc_rmse"] <= baseline["f_dc_rmse"] * 1.25 + 1e-4
    if ours.f_rest.shape[1]:
        assert rep["f_rest_rmse"] <= baseline["f_rest_rmse"] * 1.25 + 1e-4
    return rep


@pytest.fixture(scope="module")
def synth_sh1(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("edit") / "synth.ply"
    path.write_bytes(ply_bytes(make_scene(4000, 1, seed=5)))
    return str(path)


def _baseline(edited: str, tmp) -> dict:
    """What our compression alone loses on splat-transform's edited scene."""
    _compress(edited, str(tmp / "plain.sog"), EditSettings())
    splat_transform.run(str(tmp / "plain.sog"), str(tmp / "plain.ply"))
    return fidelity(read_splats(edited), read_splats(str(tmp / "plain.ply")))


@pytest.mark.parametrize("ours, theirs", [
    (EditSettings(rotate=(10.0, -35.0, 70.0), scale=2.5, translate=(1.0, -2.0, 0.5)),
     ["-r", "10,-35,70", "-s", "2.5", "-t", "1,-2,0.5"]),
    (EditSettings(filter_box=(-math.inf, -0.5, -math.inf, 0.5, math.inf, 1.0)), ["-B", ",-0.5,,0.5,,1"]),
    (EditSettings(filter_sphere=(0.2, -0.1, 0.3, 1.2)), ["-S", "0.2,-0.1,0.3,1.2"]),
    (EditSettings(min_opacity=0.4), ["-V", "opacity,gte,0.4"]),
    (EditSettings(rotate=(0.0, 90.0, 0.0), filter_box=(-1.0, -1.0, -1.0, 1.0, 1.0, 1.0)),
     ["-r", "0,90,0", "-B", "-1,-1,-1,1,1,1"]),
], ids=["rotate-scale-translate", "box-open-sides", "sphere", "min-opacity", "filter-after-rotate"])
def test_edit_matches_splat_transform(tmp_path, synth_sh1, ours, theirs):
    res = _compress(synth_sh1, str(tmp_path / "ours.sog"), ours)
    splat_transform.run(str(tmp_path / "ours.sog"), str(tmp_path / "ours.ply"))
    splat_transform.run(synth_sh1, *theirs, str(tmp_path / "theirs.ply"))
    baseline = _baseline(str(tmp_path / "theirs.ply"), tmp_path)
    ref = read_splats(str(tmp_path / "theirs.ply"))
    assert 0 < ref.count
    _within_bounds(ref, read_splats(str(tmp_path / "ours.ply")), baseline)
    assert res.count == ref.count and res.edits.dropped_filter == 4000 - ref.count


def test_rotating_an_sh3_capture_matches_splat_transform(tmp_path):
    """The issue's case: the trained SH3 capture turned upright, SH coefficients rotated with it."""
    if not os.path.isfile(LEICA):
        pytest.skip(f"{LEICA} not present")
    _compress(LEICA, str(tmp_path / "ours.sog"), EditSettings(rotate=(-90.0, 0.0, 180.0)))
    splat_transform.run(str(tmp_path / "ours.sog"), str(tmp_path / "ours.ply"))
    splat_transform.run(LEICA, "-r", "-90,0,180", str(tmp_path / "theirs.ply"))
    baseline = _baseline(str(tmp_path / "theirs.ply"), tmp_path)
    _within_bounds(read_splats(str(tmp_path / "theirs.ply")), read_splats(str(tmp_path / "ours.ply")), baseline)


def _render(s: Splats, view: View, near: float, far: float) -> torch.Tensor:
    return render({k: torch.from_numpy(getattr(s, k)) for k in ATTRIBUTES}, Camera(view, 96, 96, 60, near, far))


def test_rotated_scene_seen_by_a_rotated_camera_is_the_same_picture():
    """View-dependent colour follows the rotation: the transformed scene, seen by the camera moved
    with it, renders what the original did; with the SH left unrotated it does not."""
    s = make_scene(2000, 3, seed=3)
    s.f_rest *= 3                                   # strong view dependence
    angles, scale, shift = (30.0, 45.0, 60.0), 2.0, (1.0, 2.0, 3.0)
    moved = transform_splats(s, angles, scale, shift)
    rot = quat_matrix(euler_quat(angles) * np.array([1, -1, -1, 1]))

    def move(p) -> tuple:
        return tuple(scale * rot @ np.asarray(p, np.float64) + ENGINE_FRAME @ np.array(shift))

    stale = Splats(moved.means, moved.quats, moved.log_scales, moved.f_dc, moved.opacity, s.f_rest)
    views, near, far = views_around(s.means, 2)
    for v in views:
        mv = View(move(v.position), move(v.target), tuple(rot @ np.asarray(v.up)))
        a = _render(s, v, near, far)
        psnr = -10 * math.log10(((a - _render(moved, mv, near * scale, far * scale)) ** 2).mean().item() + 1e-20)
        stale_psnr = -10 * math.log10(((a - _render(stale, mv, near * scale, far * scale)) ** 2).mean().item())
        assert psnr > 80 and stale_psnr < 45


def _invalid_scene() -> tuple[Splats, set[int], set[int]]:
    """A scene with one splat of each invalid kind, and two with saturated values that are kept."""
    s = make_scene(500, 1, seed=9)
    bad = {3: ("means", np.nan), 10: ("f_dc", np.inf), 30: ("log_scales", np.nan), 40: ("opacity", -np.inf),
           50: ("f_rest", -np.inf), 60: ("quats", np.inf), 70: ("log_scales", np.inf)}
    for i, (attr, value) in bad.items():
        arr = getattr(s, attr)
        if arr.ndim == 1:
            arr[i] = value
        else:
            arr[i, 0] = value
    s.quats[20] = 0.0
    s.opacity[80] = np.inf            # fully opaque: kept
    s.log_scales[90, 1] = -np.inf     # flat: kept
    return s, set(bad) | {20}, {80, 90}


def test_invalid_drop_removes_exactly_the_invalid_splats(tmp_path):
    s, bad, saturated = _invalid_scene()
    data = ply_bytes(s)
    with pytest.raises(PlyError, match="non-finite values") as refused:
        read_scene(data, "bad.ply")
    # every bad attribute is named, not only the first
    assert all(f"{attr} of" in str(refused.value) for attr in ("means", "quats", "log_scales", "f_dc", "f_rest"))
    scene = read_scene(data, "bad.ply", invalid="drop")
    assert scene.dropped_invalid == len(bad) and scene.splats.count == s.count - len(bad)
    keep = np.array([i for i in range(s.count) if i not in bad])
    clean = s.take(keep)
    assert np.array_equal(scene.splats.means, clean.means)
    assert np.isfinite(scene.splats.opacity).all() and np.isfinite(scene.splats.log_scales).all()
    # splat-transform's -N removes the same splats
    (tmp_path / "bad.ply").write_bytes(data)
    splat_transform.run(str(tmp_path / "bad.ply"), "-N", str(tmp_path / "theirs.ply"))
    theirs = read_splats(str(tmp_path / "theirs.ply"))
    assert theirs.count == scene.splats.count
    assert np.allclose(np.sort(theirs.means[:, 2]), np.sort(scene.splats.means[:, 2]))
    # through the compressor: counted, the rest within the core bounds
    with Compressor(device="cpu", settings=CompressSettings(edit=EditSettings(invalid="drop")), warm=False) as c:
        res = c.compress(data, str(tmp_path / "out.sog"), name="bad.ply")
    assert res.edits.dropped_invalid == len(bad) and res.count == s.count - len(bad)
    rep = fidelity(scene.splats, read_splats(str(tmp_path / "out.sog")))
    assert rep["position_max_steps"] <= QUANTIZATION_BOUNDS["position_max_steps"] + 1e-3


def test_a_scene_with_only_invalid_splats_fails_with_that_reason():
    s = make_scene(10, 0)
    s.means[:, 0] = np.nan
    with pytest.raises(EmptySceneError, match="all 10 splats are invalid"):
        read_scene(ply_bytes(s), "nan.ply", invalid="drop")


@pytest.mark.parametrize("budget", [EditSettings(max_splats_fraction=0.5), EditSettings(max_splats=700)])
def test_max_splats_meets_the_budget_and_keeps_the_coverage(tmp_path, synth_sh1, budget):
    """The budget is met (merging pairs can leave a few splats over a round's target: at most 5 %
    under it), and the merged scene renders closer to the full one than dropping the same number
    of splats at random would."""
    from sogs_core.render.score import RenderMetricSettings, render_fidelity

    res = _compress(synth_sh1, str(tmp_path / "half.sog"), budget)
    want = 2000 if budget.max_splats is None else 700
    assert 0.95 * want <= res.count <= want
    assert res.edits.merged_budget == 4000 - res.count
    full, merged = read_splats(synth_sh1), read_splats(str(tmp_path / "half.sog"))
    dropped = full.take(np.sort(np.random.default_rng(0).choice(full.count, res.count, replace=False)))
    metric = RenderMetricSettings(views=2, width=96, height=96)
    assert render_fidelity(full, merged, metric)["render_psnr"] > render_fidelity(full, dropped, metric)["render_psnr"] + 1


def test_edits_are_in_the_settings_hash_and_none_keeps_the_old_one():
    plain = CompressSettings()
    assert CompressSettings(edit=EditSettings()).digest() == plain.digest()
    digests = {CompressSettings(edit=e).digest() for e in (
        EditSettings(), EditSettings(invalid="drop"), EditSettings(rotate=(0.0, 0.0, 180.0)),
        EditSettings(rotate=(0.0, 0.0, 90.0)), EditSettings(max_splats=10), EditSettings(max_splats_fraction=0.1))}
    assert len(digests) == 6


def test_cli_edits_reported_and_bad_values_refused(tmp_path, synth_sh1):
    out = tmp_path / "o.sog"
    r = cli("compress", synth_sh1, str(out), "-q", "--json", "--device", "cpu", "--rotate=-90,0,0",
            "--min-opacity", "0.3")
    assert r.returncode == 0, r.stderr
    edits = json.loads(r.stdout.strip().splitlines()[-1])["edits"]
    assert edits["applied"] == "--rotate -90,0,0 --min-opacity 0.3" and edits["dropped_filter"] > 0
    for bad, says in ((["--rotate", "1,2"], "needs 3 comma-separated numbers"), (["--scale", "0"], "--scale must be"),
                      (["--max-splats", "150%"], "percentage"), (["--filter-sphere", "0,0,0,-1"], "radius must be")):
        r = cli("compress", synth_sh1, str(out), "--device", "cpu", *bad)
        assert r.returncode == 2 and says in r.stderr, r.stderr
    r = cli("compress", synth_sh1, str(tmp_path / "s" / "lod-meta.json"), "--device", "cpu", "--rotate", "0,0,90")
    assert r.returncode == 2 and "streamed" in r.stderr, r.stderr
