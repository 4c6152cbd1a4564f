"""The render metric without a browser (`sogs_core.render.raster` + `score`): what a single splat
draws, front-to-back compositing, SH following the view, chunking that changes nothing, and the
metric's answers: the cap for identical scenes, lower for a moved splat or a changed colour.
Agreement with the PlayCanvas engine is measured by bench/render_agreement.py (README)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sogs_core.formats.ply.write import ply_bytes
from sogs_core.model.splats import ATTRIBUTES, Splats
from sogs_core.pipeline.compressor import Compressor
from sogs_core.render import raster, score
from sogs_core.render.cameras import View
from sogs_core.model.sh import SH_C0, SH_C1
from sogs_core.render.raster import Camera, render
from sogs_core.render.score import PSNR_CAP_DB, RenderMetricSettings, cameras_for, render_fidelity

from .conftest import make_scene

#: looking down +z from the origin: image x right = world +x, image y down = world +y
FRONT = View(position=(0.0, 0.0, 0.0), target=(0.0, 0.0, 1.0), up=(0.0, -1.0, 0.0))


def _splats(means, colours, log_scale=-2.0, opacity=8.0, f_rest=None) -> Splats:
    """Round splats at `means` whose band-0 colour is `colours` (linear RGB, as rendered)."""
    n = len(means)
    f_dc = (np.asarray(colours, np.float32) - 0.5) / SH_C0
    return Splats(np.asarray(means, np.float32), np.tile(np.float32([1, 0, 0, 0]), (n, 1)),
                  np.full((n, 3), log_scale, np.float32), f_dc.astype(np.float32),
                  np.full(n, opacity, np.float32),
                  np.zeros((n, 0), np.float32) if f_rest is None else np.asarray(f_rest, np.float32))


def _tensors(s: Splats) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(getattr(s, k)).float() for k in ATTRIBUTES}


def _render(s: Splats, view: View = FRONT, size: int = 33) -> np.ndarray:
    return render(_tensors(s), Camera(view, size, size, 60.0, 0.01, 100.0)).numpy()


def test_one_splat_draws_its_colour_in_the_middle_and_nothing_in_the_corner():
    img = _render(_splats([[0, 0, 5]], [[1.0, 0.2, 0.0]]))
    centre = img[16, 16]
    # opacity sigmoid(8) x the falloff at the centre pixel (the engine does not clamp alpha)
    np.testing.assert_allclose(centre, np.array([1.0, 0.2, 0.0]), atol=0.02)
    assert img[0, 0].max() == 0.0
    # symmetric footprint around the centre pixel
    np.testing.assert_allclose(img[16, 10], img[16, 22], atol=1e-5)
    np.testing.assert_allclose(img[10, 16], img[22, 16], atol=1e-5)


def test_footprint_is_the_engines_a_subpixel_splat_is_not_drawn_and_the_quad_ends_at_2_8_sigma():
    """The engine skips splats whose quad half-axis is under 2 px and cuts each at d^2 = 8."""
    tiny = _render(_splats([[0, 0, 5]], [[1.0, 1.0, 1.0]], log_scale=-3.5))
    assert tiny.max() == 0.0
    # sigma = 4 px on a 33 px image: fy = 16.5 / tan(30 deg), so the scale is 4 * 5 / fy; at
    # 2.9 sigma a 3DGS footprint (alpha >= 1/255) would still draw, the engine's quad has ended
    fy = 16.5 / math.tan(math.radians(30.0))
    img = _render(_splats([[0, 0, 5]], [[1.0, 1.0, 1.0]], log_scale=math.log(4.0 * 5 / fy)))
    sigma = math.sqrt(16.0 + raster.LOW_PASS)
    inside, outside = int(2.6 * sigma), int(math.ceil(2.9 * sigma))
    assert math.exp(-0.5 * (outside / sigma) ** 2) > 1 / 255
    assert img[16, 16 + inside].max() > 0.0
    assert img[16, 16 + outside].max() == 0.0


def test_the_nearer_splat_covers_the_farther_one_whatever_the_input_order():
    near_red, far_blue = ([0, 0, 3], [1.0, 0.0, 0.0]), ([0, 0, 6], [0.0, 0.0, 1.0])
    for first, second in ((near_red, far_blue), (far_blue, near_red)):
        img = _render(_splats([first[0], second[0]], [first[1], second[1]], log_scale=-1.0))
        r, g, b = img[16, 16]
        assert r > 0.9 and b < 0.02


def test_image_orientation_follows_the_camera():
    """A splat at world +x shows right of centre, one at +y (down in 3DGS captures) below it."""
    img = _render(_splats([[1.0, 0, 5], [0, 1.0, 5]], [[1, 0, 0], [0, 1, 0]], log_scale=-2.0))
    red = np.unravel_index(np.argmax(img[..., 0]), img.shape[:2])
    green = np.unravel_index(np.argmax(img[..., 1]), img.shape[:2])
    assert red[1] > 16 and abs(red[0] - 16) <= 1
    assert green[0] > 16 and abs(green[1] - 16) <= 1


def test_sh_band_one_follows_the_view_direction():
    """f_rest's first coefficient of each channel is the -C1 * y basis: seen from above and from
    below (y flips), the colour moves by twice that term, as the formula says."""
    coeff = 0.3
    rest = np.zeros((1, 9), np.float32)
    rest[0, [0, 3, 6]] = coeff                              # channel-major: R, G, B first coefficients
    s = _splats([[0, 0, 0]], [[0.5, 0.5, 0.5]], log_scale=-1.0, f_rest=rest)
    above = View((0.0, -5.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    below = View((0.0, 5.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    c_above = _render(s, above)[16, 16] / 0.99
    c_below = _render(s, below)[16, 16] / 0.99
    # direction camera -> splat: +y from above, -y from below
    np.testing.assert_allclose(c_above, 0.5 - SH_C1 * coeff, atol=0.01)
    np.testing.assert_allclose(c_below, 0.5 + SH_C1 * coeff, atol=0.01)


def test_chunking_changes_nothing_but_the_early_stop(monkeypatch):
    """Chunks only bound memory; between chunks an opaque pixel stops taking fragments, which
    leaves out at most MIN_TRANSMITTANCE of its light."""
    scene = make_scene(3000, 2, seed=4)
    scene.opacity[:] = 4.0                                   # dense enough for pixels to turn opaque
    cam = Camera(View((0.0, 0.0, -12.0), (0.0, 0.0, 0.0), (0.0, -1.0, 0.0)), 48, 40, 60.0, 0.1, 100.0)
    whole = render(_tensors(scene), cam)
    monkeypatch.setattr(raster, "CHUNK_FRAGMENTS", 997)
    chunked = render(_tensors(scene), cam)
    assert whole.abs().sum() > 0
    torch.testing.assert_close(whole, chunked, atol=1.5 * raster.MIN_TRANSMITTANCE, rtol=0)
    monkeypatch.setattr(raster, "MIN_TRANSMITTANCE", 1e-300)   # no early stop: equal to rounding
    torch.testing.assert_close(render(_tensors(scene), cam), whole, atol=2e-5, rtol=1e-4)


def test_views_projected_together_equal_each_view_projected_alone():
    """`project_views` (every camera in one set of launches, the GPU path) gives each view the
    splats, order and values `project` gives it alone."""
    scene = make_scene(3000, 2, seed=5)
    scene.log_scales[:] += 1.5                 # big enough to be drawn at this size
    t = _tensors(scene)
    cams = cameras_for(scene.means, RenderMetricSettings(views=3, width=40, height=32))
    together, counts = raster.project_views(t, cams)
    start = 0
    for cam, count in zip(cams, counts):
        alone = raster.project(t, cam)
        assert count == len(alone["u"]) > 100
        for k, v in alone.items():
            torch.testing.assert_close(together[k][start:start + count], v, atol=1e-5, rtol=1e-5)
        start += count
    assert start == len(together["u"])


def test_projection_in_parts_equals_the_whole(monkeypatch):
    """A scene projected VIEW_BATCH_SPLATS splat-views at a time (how a huge scene's render stays
    bounded) gives the same splats, order and values as one pass; the covariances made a chunk
    at a time (`prepare`, `score._prepared`) equal those made at once."""
    scene = make_scene(3000, 2, seed=7)
    scene.log_scales[:] += 1.5
    t = _tensors(scene)
    cams = cameras_for(scene.means, RenderMetricSettings(views=3, width=40, height=32))
    whole, counts = raster.project_views(t, cams)
    monkeypatch.setattr(raster, "VIEW_BATCH_SPLATS", 3 * 700)     # 700 splats a part, five parts
    monkeypatch.setattr(raster, "PREPARE_ROWS", 512)
    parts, part_counts = raster.project_views(_tensors(scene), cams)
    assert part_counts == counts and sum(counts) > 300
    for k, v in whole.items():
        assert torch.equal(parts[k], v), k
    prepared = score._prepared(scene, torch.device("cpu"))
    assert set(prepared) == {"means", "f_dc", "f_rest", "cov6", "alpha0"}
    assert torch.equal(prepared["cov6"], raster.prepare(t)["cov6"])


def test_an_empty_scene_renders_the_background():
    """No splat at all (a level or a file with nothing left to draw): every view is the
    background, not an error."""
    empty = _splats(np.zeros((0, 3)), np.zeros((0, 3)))
    cams = cameras_for(np.float32([[0, 0, 1], [1, 1, 2]]), RenderMetricSettings(views=2, width=8, height=8))
    for img in score.render_scene(empty, cams, (0.2, 0.4, 0.6)):
        assert img.shape == (8, 8, 3)
        torch.testing.assert_close(img, torch.tensor([51.0, 102.0, 153.0]).expand(8, 8, 3))


SMALL = RenderMetricSettings(views=3, width=48, height=48)


def test_identical_scenes_score_the_cap():
    scene = make_scene(2000, 1, seed=6)
    report = render_fidelity(scene, scene, SMALL)
    assert report["render_psnr"] == PSNR_CAP_DB and report["render_psnr_worst_view"] == PSNR_CAP_DB
    assert report["render_ssim"] == pytest.approx(1.0)
    assert len(report["views"]) == 3


def _visible(scene: Splats) -> int:
    """The most opaque of the larger splats near the scene's centre: one every view shows."""
    centre = np.median(scene.means, 0)
    near = np.linalg.norm(scene.means - centre, axis=1) < np.percentile(
        np.linalg.norm(scene.means - centre, axis=1), 20)
    score = np.where(near, scene.opacity + scene.log_scales.max(1), -np.inf)
    return int(np.argmax(score))


def test_moving_one_visible_splat_or_changing_a_colour_lowers_the_psnr():
    scene = make_scene(2000, 0, seed=8)
    i = _visible(scene)
    scene.opacity[i] = 6.0
    scene.log_scales[i] = scene.log_scales[i].max()
    moved = scene.take(np.arange(scene.count))
    moved.means[i] += np.float32(2.0 * math.exp(scene.log_scales[i].max()))
    recoloured = scene.take(np.arange(scene.count))
    recoloured.f_dc[i] += np.float32(1.0)
    for other in (moved, recoloured):
        report = render_fidelity(scene, other, SMALL)
        assert report["render_psnr_worst_view"] < report["render_psnr"] <= PSNR_CAP_DB
        assert report["render_psnr"] < PSNR_CAP_DB - 20


def test_compress_reports_the_render_metric():
    scene = make_scene(3000, 1, seed=9)
    with Compressor(device="cpu", warm=False, render_metric=SMALL) as comp:
        res = comp.compress(ply_bytes(scene))
    fid = res.fidelity
    assert 30.0 < fid["render_psnr"] < PSNR_CAP_DB
    assert fid["render_psnr_worst_view"] <= fid["render_psnr"] and 0.9 < fid["render_ssim"] <= 1.0
    assert "render" in res.seconds
    with Compressor(device="cpu", warm=False) as comp:
        assert "render_psnr" not in comp.compress(ply_bytes(scene)).fidelity


def test_torch_psnr_and_ssim_equal_the_numpy_ones():
    """The metric scores renders where they are (a GPU) with the same numbers as the engine
    path's numpy/scipy scores."""
    from sogs_core.render.metrics import psnr, psnr_tensor, ssim, ssim_tensor

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-9, 10, a.shape), 0, 255).astype(np.uint8)
    assert psnr_tensor(a, b) == pytest.approx(psnr(a, b), abs=1e-9)
    assert ssim_tensor(torch.from_numpy(a).float(), b) == pytest.approx(ssim(a, b), abs=1e-9)
    assert psnr_tensor(a, a) == math.inf


def test_compress_cli_renders_by_default_on_a_gpu_only(tmp_path):
    """`compress` without --render-metric on a CPU reports no render scores (it would cost about
    half a compression there); --render-metric adds them, --no-render-metric keeps them off.
    The GPU side of the default (on) is not reached on a CPU-only box."""
    import json

    from .test_cli import cli

    (tmp_path / "in.ply").write_bytes(ply_bytes(make_scene(2000, 0, seed=6)))
    runs = {}
    for flag in ([], ["--render-metric"], ["--no-render-metric"]):
        r = cli("compress", str(tmp_path / "in.ply"), str(tmp_path / "o.sog"), "--device", "cpu", "--json", "-q",
                *flag)
        assert r.returncode == 0, r.stderr
        runs[tuple(flag)] = json.loads(r.stdout.strip().splitlines()[-1])
    assert "render_psnr" not in runs[()]["fidelity"] and "render_psnr" not in runs[("--no-render-metric",)]["fidelity"]
    assert runs[("--render-metric",)]["fidelity"]["render_psnr"] > 30.0
    assert "render" in runs[("--render-metric",)]["seconds"] and "render" not in runs[()]["seconds"]
