"""The engine's own rounding in our raster (`sogs_core.render.engine_model`): its compact work
buffer's codes, its bucketed depth sort (ties drawn in file order), its RGBA8 blending, and the
metric with all three (`RenderMetricSettings.engine_model`, `compare --engine-model`).
How close this brings our scores to the engine's is measured by bench/render_agreement.py
--engine-model (README, Quality in the viewer)."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from sogs_core.formats.ply.write import write_ply
from sogs_core.model.rotations import quat_to_matrix
from sogs_core.model.sh import SH_C0
from sogs_core.model import work_buffer
from sogs_core.model.splats import Splats
from sogs_core.render import engine_model as em
from sogs_core.render.cameras import View
from sogs_core.render.raster import Camera
from sogs_core.render.score import PSNR_CAP_DB, RenderMetricSettings, render_pair, render_scene, score_views

from .conftest import make_scene

FRONT = View(position=(0.0, 0.0, 0.0), target=(0.0, 0.0, 1.0), up=(0.0, -1.0, 0.0))
#: the work buffer's scale step in ln
SCALE_STEP = work_buffer.SCALE_STEP


def _splats(means, colours, log_scale=-1.0, opacity=0.0) -> Splats:
    n = len(means)
    f_dc = (np.asarray(colours, np.float32) - 0.5) / SH_C0
    return Splats(np.asarray(means, np.float32), np.tile(np.float32([1, 0, 0, 0]), (n, 1)),
                  np.full((n, 3), log_scale, np.float32), f_dc.astype(np.float32),
                  np.full(n, opacity, np.float32), np.zeros((n, 0), np.float32))


def test_scales_go_to_the_nearest_of_255_levels_8_6_percent_apart():
    ln = torch.linspace(-11.9, 8.9, 20001)
    out = em.work_buffer_log_scales(ln)
    assert float((out - ln).abs().max()) <= SCALE_STEP / 2 + 1e-5
    levels = torch.unique(out)
    assert torch.allclose(levels[1:] - levels[:-1], torch.full((len(levels) - 1,), SCALE_STEP), atol=1e-5)
    assert math.isclose(math.exp(SCALE_STEP), 1.0858, abs_tol=1e-4)
    # below the range: the first level; a scale under 1e-10 draws nothing
    assert float(em.work_buffer_log_scales(torch.tensor([-15.0]))[0]) == pytest.approx(-12.0 + SCALE_STEP, abs=1e-5)
    assert em.work_buffer_log_scales(torch.tensor([-24.0]))[0] == -math.inf


def test_rotations_come_back_unit_sign_free_and_within_a_third_of_a_degree():
    q = torch.from_numpy(np.random.default_rng(3).normal(size=(20000, 4)).astype(np.float32))
    out = em.work_buffer_quats(q)
    assert torch.allclose(out.norm(dim=1), torch.ones(len(q)), atol=1e-5)
    assert torch.equal(out, em.work_buffer_quats(-q))
    unit = q / q.norm(dim=1, keepdim=True)
    # the angle between the two rotations; the 11/11/10-bit codes of q.xyz / sqrt(1 + w) move each
    # component by at most half a step (1/2047, 1/1023 of [-1, 1]): about 0.25 degrees at most
    cos_half = (unit * out).sum(1).abs().clamp(max=1.0)
    degrees = torch.rad2deg(2 * torch.acos(cos_half))
    assert float(degrees.max()) < 0.3
    assert torch.allclose(quat_to_matrix(out), quat_to_matrix(unit), atol=0.01)


def test_alpha_and_colours_round_to_their_codes():
    a = torch.linspace(0, 1, 1001)
    assert float((em.work_buffer_alpha(a) - a).abs().max()) <= 0.5 / 255 + 1e-7
    rgb = torch.rand(5000, 3) * 5.0 - 0.5
    out = em.work_buffer_colours(rgb)
    step = torch.tensor([4 / 2047, 4 / 2047, 4 / 1023])
    inside = (rgb >= 0) & (rgb <= 4)
    assert bool(((out - rgb).abs() <= step / 2 + 1e-6)[inside].all())
    assert float(out.min()) == 0.0 and float(out.max()) == 4.0


def test_each_kind_of_file_has_the_engines_bounding_box():
    means = np.float32([[0, 0, 0], [1, 2, 3]])
    log_scales = np.log(np.float32([[0.1, 0.2, 0.05], [0.5, 0.1, 0.1]]))
    ply = em.SortBox.of(means, log_scales, "ply")
    assert ply.lo == pytest.approx((-0.4, -0.4, -0.4)) and ply.hi == pytest.approx((2.0, 3.0, 4.0))
    sog = em.SortBox.of(means, log_scales, "sog")
    assert sog.lo == pytest.approx((0, 0, 0)) and sog.hi == pytest.approx((1, 2, 3))
    # a compressed PLY: each 256-splat chunk's box grown by the chunk's largest scale
    packed = em.SortBox.of(means, log_scales, "compressed_ply")
    assert packed.lo == pytest.approx((-0.5,) * 3) and packed.hi == pytest.approx((1.5, 2.5, 3.5))
    assert em.source_kind("a/b.compressed.ply") == "compressed_ply" and em.source_kind("x.PLY") == "ply"
    assert em.source_kind("s.sog") == "sog" and em.source_kind("scene/meta.json") == "sog"
    with pytest.raises(ValueError):
        em.SortBox.of(means, log_scales, "spz")


def test_bucket_count_follows_the_splat_count_and_the_nearest_bins_get_the_most():
    box = lambda n: em.SortBox((0, 0, 0), (1, 1, 1), n)  # noqa: E731
    assert box(100).buckets() == 2 ** 10 + 1 and box(8192).buckets() == 2 ** 11 + 1
    assert box(10 ** 9).buckets() == 2 ** 20 + 1
    base, size = box(8192).bin_table(camera_bin=31)
    assert size[31] == math.floor(40 / 140 * 2049) and size[0] == math.floor(1 / 140 * 2049)
    assert base[1:33] == [b + s for b, s in zip(base[:32], size[:32])]
    assert base[32] <= 2049


def test_keys_put_nearer_buckets_first_and_ties_in_file_order():
    box = em.SortBox((-1.0, -1.0, 1.0), (1.0, 1.0, 9.0), 4)
    pos, fwd = torch.zeros(3), torch.tensor([0.0, 0.0, 1.0])
    depth = torch.tensor([8.0, 2.0, 5.0, 2.0 + 1e-6])
    keys = box.draw_keys(depth, torch.arange(4), pos, fwd)
    assert torch.argsort(keys).tolist() == [1, 3, 2, 0]
    # two splats 1e-6 apart at depth 2.1 share a bucket: the one earlier in the file comes first even
    # when it is the farther one
    keys = box.draw_keys(torch.tensor([2.1 + 1e-6, 2.1]), torch.tensor([0, 1]), pos, fwd)
    assert torch.argsort(keys).tolist() == [0, 1]


def test_rgba8_blending_rounds_every_blend_to_a_byte():
    # one pixel, two fragments: the far one (index 1) first, then the near one over it
    p = {"u": torch.zeros(2), "rgb": torch.tensor([[0.3, 0.6, 1.2], [0.9, 0.1, 0.5]])}
    alpha = torch.tensor([0.37, 0.51])

    def fragments(sl):
        idx = torch.arange(2)[sl]
        return torch.zeros(len(idx), dtype=torch.long), alpha[idx], idx

    out = em.composite_rgba8(p, 1, 1, fragments, [slice(1, 2), slice(0, 1)])
    dst = np.zeros(3)
    for i in (1, 0):
        dst = np.floor(np.minimum(p["rgb"][i].double().numpy() * float(alpha[i]), 1.0) * 255
                       + dst * (1 - float(alpha[i])) + 0.5)
    assert out[0].tolist() == dst.tolist()
    assert torch.equal(out, out.round())


def test_blend_chunks_go_from_the_back_within_their_budget():
    from sogs_core.render.raster import _slices_from_back

    count = torch.tensor([5, 5, 100, 1, 1, 1, 50])
    chunks = _slices_from_back(count, 10)
    assert chunks == [slice(6, 7), slice(3, 6), slice(2, 3), slice(0, 2)]    # a splat over budget alone
    assert _slices_from_back(torch.zeros(0, dtype=torch.long), 10) == []


def test_identical_files_score_the_cap_and_file_order_matters_only_in_the_engine_model():
    scene = make_scene(3000, 1, seed=5)
    settings = RenderMetricSettings(views=2, width=48, height=48, engine_model=True)
    same = score_views(*render_pair(scene.means, scene, scene, settings, kinds=("sog", "sog")))
    assert same["render_psnr"] == PSNR_CAP_DB
    # two overlapping splats at almost the same depth, in one bucket of the box (a third splat,
    # too faint to draw, stretches the box behind them): the plain raster draws the nearer in
    # front whatever the file order; the engine model draws the first in the file in front
    near_red = ([0.0, 0.0, 3.1], [1.0, 0.0, 0.0])
    far_blue = ([0.0, 0.0, 3.1 + 1e-4], [0.0, 0.0, 1.0])
    cam = [Camera(FRONT, 33, 33, 60.0, 0.01, 100.0)]
    for first, second in ((near_red, far_blue), (far_blue, near_red)):
        s = _splats([first[0], second[0], [0.0, 0.0, 6.0]], [first[1], second[1], [1.0, 1.0, 1.0]], opacity=4.0)
        s.opacity[2] = -10.0
        keys = em.SortBox.of(s.means, s.log_scales, "ply").draw_keys(
            torch.from_numpy(s.means[:2, 2]), torch.arange(2), torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]))
        assert float(keys[1] - keys[0]) == 1.0                  # one bucket, file order
        plain = render_scene(s, cam)[0][16, 16]
        model = render_scene(s, cam, engine_kind="ply")[0][16, 16]
        assert plain[0] > 200 and plain[2] < 20
        front = model[0] if first is near_red else model[2]
        assert front > 200


def test_the_engine_model_changes_a_real_score_and_stays_bounded(tmp_path):
    scene = make_scene(4000, 3, seed=11)
    other = Splats(scene.means, scene.quats, scene.log_scales + np.float32(0.03), scene.f_dc, scene.opacity, scene.f_rest)
    plain = RenderMetricSettings(views=2, width=64, height=64)
    model = RenderMetricSettings(views=2, width=64, height=64, engine_model=True)
    a = score_views(*render_pair(scene.means, scene, other, plain))["render_psnr"]
    b = score_views(*render_pair(scene.means, scene, other, model, kinds=("ply", "sog")))["render_psnr"]
    assert a < PSNR_CAP_DB and b < PSNR_CAP_DB and a != b


def test_the_default_metric_sees_scales_as_the_engine_keeps_them():
    """Scales moved to the level the engine rounds them to are the input to the engine, and to
    the default metric (its work buffer); the exact picture sees them move."""
    scene = make_scene(3000, 1, seed=4)
    levels = work_buffer.scale_levels(work_buffer.scale_codes(torch.from_numpy(scene.log_scales))).numpy()
    moved = Splats(scene.means, scene.quats, levels, scene.f_dc, scene.opacity, scene.f_rest)
    settings = RenderMetricSettings(views=2, width=64, height=64)
    assert settings.work_buffer
    assert score_views(*render_pair(scene.means, scene, moved, settings))["render_psnr"] == PSNR_CAP_DB
    exact = RenderMetricSettings(views=2, width=64, height=64, work_buffer=False)
    assert score_views(*render_pair(scene.means, scene, moved, exact))["render_psnr"] < 60.0


def test_compare_cli_takes_engine_model_with_our_raster_only(tmp_path):
    scene = make_scene(500, 0, seed=2)
    write_ply(tmp_path / "a.ply", scene)
    run = lambda *extra: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "sogs_cli.main", "compare", str(tmp_path / "a.ply"), str(tmp_path / "a.ply"),
         "--device", "cpu", "--size", "32x32", "--views", "2", *extra], capture_output=True, text=True)
    ok = run("--engine-model")
    assert ok.returncode == 0, ok.stderr
    assert "engine's rounding" in ok.stdout and "100.00 dB" in ok.stdout
    bad = run("--engine-model", "--render", "off")
    assert bad.returncode != 0 and "--engine-model" in bad.stderr
    exact = run("--exact")
    assert exact.returncode == 0 and "(exact)" in exact.stdout
    both = run("--exact", "--engine-model")
    assert both.returncode != 0 and "contradict" in both.stderr
