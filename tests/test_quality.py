"""`--quality`: 100 keeps the tightest contract, each lower level stays within the position
bound it states and writes fewer bytes, the same seed gives the same bytes, and the level is part
of the settings hash."""
from __future__ import annotations

import numpy as np
import pytest

from sogs_core.formats import read_splats
from sogs_core.formats.ply.write import ply_bytes
from sogs_core.pipeline.compressor import Compressor
from sogs_core.pipeline.fidelity import fidelity
from sogs_core.quantize.quality import (colour_codebook_size, opacity_bound, opacity_drop_bits, position_bound_steps,
                                        position_drop_bits, quat_step)
from sogs_core.settings import CompressSettings

from .conftest import make_scene
from .test_cli import cli


@pytest.fixture(scope="module")
def scene_ply():
    return ply_bytes(make_scene(6000, 0, seed=11))


def _compress(data: bytes, quality: int) -> tuple[bytes, dict]:
    res = Compressor(device="cpu", settings=CompressSettings(quality=quality)).compress(data, name="s.ply")
    return res.package.bundle_bytes(), res.fidelity


def test_levels_drop_position_bits_within_their_stated_bound(scene_ply):
    assert [position_drop_bits(q) for q in (100, 99, 91, 90, 81, 80, 70, 60, 59, 0)] == [0, 1, 1, 1, 2, 2, 3, 3, 4, 4]
    reference = read_splats(scene_ply, "s.ply")
    sizes = {}
    for quality in (100, 90, 70):
        data, report = _compress(scene_ply, quality)
        sizes[quality] = len(data)
        bound = position_bound_steps(quality)
        assert report["position_max_steps"] <= bound + 1e-3
        # the file read back, matched by position, says the same
        assert fidelity(reference, read_splats(data, "s.sog"))["position_max_steps"] <= bound + 1e-3
        assert report["rotation_max_deg"] <= 1.5
        assert report["opacity_max_error"] <= opacity_bound(quality) + 1e-6
    assert report["position_max_steps"] > 0.5 + 1e-3        # level 70 did use its coarser grid
    assert report["opacity_max_error"] > 0.5 / 255 + 1e-6     # and its coarser opacity
    assert sizes[70] < sizes[90] < sizes[100]


def test_below_90_colours_take_128_levels_and_below_70_rotations_a_7_bit_grid(scene_ply):
    """Below 90 the colour codebook holds 128 distinct levels (where they keep one display
    step: this scene's do); below 70 a trained scene's rotation codes are even (a 7-bit grid,
    the rotation error at most about twice the 8-bit one); a decoded SOG quantized again keeps
    every 8-bit rotation code."""
    from sogs_core.formats import read_scene

    assert [quat_step(q) for q in (100, 70, 69, 60, 0)] == [1, 1, 2, 2, 2]
    assert [quat_step(q, sog_input=True) for q in (100, 60, 0)] == [1, 1, 1]
    assert [colour_codebook_size(q) for q in (100, 90, 89, 80, 0)] == [256, 256, 128, 128, 128]
    data90, _ = _compress(scene_ply, 90)
    data70, report70 = _compress(scene_ply, 70)
    data60, report = _compress(scene_ply, 60)
    q90, q70, q60 = (read_scene(d, "s.sog").codes for d in (data90, data70, data60))
    assert len(np.unique(q90.sh0_codebook)) > 128 and len(np.unique(q70.sh0_codebook)) == 128
    assert (q70.quats_b[:, :3] % 2).any()
    assert not (q60.quats_b[:, :3] % 2).any()
    assert 1.5 * report70["rotation_max_deg"] < report["rotation_max_deg"] <= 3.0
    assert len(data60) < len(data70)
    again = Compressor(device="cpu", settings=CompressSettings(quality=60, requantize=True)).compress(
        data70, name="s.sog").package.bundle_bytes()
    assert (read_scene(again, "s.sog").codes.quats_b[:, :3] % 2).any()


def test_opacity_already_on_the_byte_grid_keeps_its_byte_at_every_level():
    """A decoded SOG's opacities are whole bytes: a level's coarser opacity grid leaves them be,
    and rounds trained (float) opacities to multiples of 2^bits."""
    import torch

    from sogs_core.formats.sog.codes import decode_opacity, encode_opacity

    assert [opacity_drop_bits(q) for q in (100, 90, 89, 80, 70, 0)] == [0, 0, 2, 2, 2, 2]
    stored = torch.arange(256, dtype=torch.uint8)
    logits = decode_opacity(stored)
    trained = torch.linspace(-6.0, 6.0, 5001)
    for bits in (0, 1, 2):
        assert torch.equal(encode_opacity(logits, bits), stored)
        coarse = encode_opacity(trained, bits).long()
        v = torch.sigmoid(trained.double()) * 255.0
        off_grid = (v - v.round()).abs() > 2e-3
        assert torch.all((coarse[off_grid] % (1 << bits) == 0) | (coarse[off_grid] == 255))
        err = (coarse.double() / 255.0 - torch.sigmoid(trained.double())).abs().max()
        assert err <= 0.5 * (1 << bits) / 255.0 + 1e-9


def test_a_decoded_sog_keeps_a_finer_position_grid(scene_ply):
    """A SOG as input, quantized again (`requantize`): its positions were rounded once already,
    so no level drops more than SOG_INPUT_POSITION_DROP_BITS of them; other inputs drop more."""
    from sogs_core.quantize.quality import SOG_INPUT_POSITION_DROP_BITS

    assert [position_drop_bits(q, sog_input=True) for q in (100, 90, 80, 70, 0)] == [0, 1, 2, 2, 2]
    assert SOG_INPUT_POSITION_DROP_BITS == 2
    sog = Compressor(device="cpu", settings=CompressSettings(quality=100)).compress(scene_ply, name="s.ply")
    sog_bytes = sog.package.bundle_bytes()
    res = Compressor(device="cpu", settings=CompressSettings(quality=70, requantize=True)).compress(
        sog_bytes, name="s.sog")
    assert not res.kept_codes
    decoded = read_splats(res.package.bundle_bytes(), "out.sog")
    report = fidelity(read_splats(sog_bytes, "s.sog"), decoded)
    assert report["position_max_steps"] <= position_bound_steps(70, sog_input=True) + 1e-3
    assert report["position_max_steps"] > position_bound_steps(80) / 2          # a coarser grid than 100's
    plain = Compressor(device="cpu", settings=CompressSettings(quality=70)).compress(scene_ply, name="s.ply")
    assert plain.fidelity["position_max_steps"] > position_bound_steps(70, sog_input=True) + 1e-3


def test_same_level_same_seed_same_bytes(scene_ply):
    assert _compress(scene_ply, 80)[0] == _compress(scene_ply, 80)[0]


def test_level_is_in_the_settings_hash_and_100_keeps_the_old_one():
    base = CompressSettings()
    assert CompressSettings(quality=100).digest() == base.digest()
    assert CompressSettings(quality=90).digest() != base.digest()
    with pytest.raises(ValueError, match="quality"):
        CompressSettings(quality=101)


def test_cli_refuses_a_level_outside_0_100(tmp_path, scene_ply):
    src = tmp_path / "s.ply"
    src.write_bytes(scene_ply)
    proc = cli("compress", str(src), str(tmp_path / "o.sog"), "--quality", "120")
    assert proc.returncode == 2 and "quality" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("compress", str(src), str(tmp_path / "o.sog"), "--quality", "90")
    assert proc.returncode == 0, proc.stderr


def test_scales_go_on_the_engines_levels_below_100_and_stay_fitted_at_100():
    """Below 100 every stored scale is the level the engine rounds the input's to, so the engine
    reads back the same code; 100 fits its codebook; scales out of the engine's range keep one."""
    import torch

    from sogs_core.model.work_buffer import SCALE_STEP, scale_codes
    from sogs_core.quantize.engine_grid import fits_engine_grid
    from sogs_core.quantize.quality import scales_on_engine_grid
    from sogs_core.quantize.scene import quantize_splats

    assert not scales_on_engine_grid(100) and scales_on_engine_grid(99) and scales_on_engine_grid(0)
    scene = make_scene(2000, 0, seed=9)
    t = {k: torch.from_numpy(getattr(scene, k)) for k in ("means", "quats", "log_scales", "f_dc", "opacity")}
    args = (t["means"], t["quats"], t["log_scales"], t["f_dc"], t["opacity"])
    q80 = quantize_splats(*args, quality=80)
    stored = torch.from_numpy(q80.scales_codebook[q80.scales_idx.astype(np.int64)])
    assert torch.equal(scale_codes(stored), scale_codes(t["log_scales"]))
    assert float((stored - t["log_scales"]).abs().max()) <= SCALE_STEP / 2 + 1e-5
    q100 = quantize_splats(*args, quality=100)
    assert not np.allclose(np.diff(q100.scales_codebook), SCALE_STEP, atol=1e-4)

    def corners(size: float) -> torch.Tensor:
        """Two centres: a scene `size` across."""
        return torch.tensor([[0.0, 0.0, 0.0], [size, 0.0, 0.0]])

    assert fits_engine_grid(t["log_scales"], corners(10.0))
    # thin axes below the engine's smallest level: harmless in a scene 10 across, not in one a
    # thousandth across; scales above its range never fit
    thin = t["log_scales"].clone()
    thin[:, 2] = -15.0
    assert fits_engine_grid(thin, corners(10.0)) and not fits_engine_grid(thin, corners(1e-3))
    assert not fits_engine_grid(t["log_scales"] + 15.0, corners(10.0))
    assert not fits_engine_grid(torch.zeros(0, 3), corners(1.0))


def test_splats_stored_with_opacity_0_are_left_out_below_100():
    scene = make_scene(3000, 0, seed=5)
    scene.opacity[:100] = -9.0                                  # byte 0 at every level
    scene.opacity[100:160] = np.log(1.5 / 253.5)                # byte 2 at 90+, 0 on 80's 4-byte grid
    data = ply_bytes(scene)
    counts, pictures = {}, {}
    for quality in (100, 90, 80):
        res = Compressor(device="cpu", settings=CompressSettings(quality=quality)).compress(data, name="s.ply")
        decoded = read_splats(res.package.bundle_bytes(), "s.sog")
        counts[quality] = (res.count, res.edits.dropped_invisible)
        assert decoded.count == res.count == scene.count - res.edits.dropped_invisible
        assert res.fidelity["count_reference"] == scene.count and res.fidelity["count_decoded"] == res.count
        if quality < 100:
            # only splats a viewer could not draw are missing (their opacity under the grid's half
            # step), the rest in bounds
            rep = fidelity(scene, decoded)
            half_step = 0.5 * (1 << opacity_drop_bits(quality)) / 255
            assert rep["missing_max_opacity"] < half_step
            assert rep["unmatched"] == 0
            assert rep["position_max_steps"] <= position_bound_steps(quality) + 1e-3
    assert counts[100] == (3000, 0)
    assert counts[90][1] >= 100 and counts[80][1] >= counts[90][1] + 60


def test_leaving_out_invisible_splats_changes_no_written_splat(monkeypatch):
    """The codebooks are fitted with the invisible splats, so every splat written is stored
    exactly as in a file that writes them all."""
    import sogs_core.quantize.visibility as visibility

    scene = make_scene(2000, 0, seed=8)
    scene.opacity[:50] = -9.0
    data = ply_bytes(scene)
    compress = lambda: read_splats(Compressor(device="cpu", settings=CompressSettings(quality=80)).compress(  # noqa: E731
        data, name="s.ply").package.bundle_bytes(), "s.sog")
    dropped = compress()
    monkeypatch.setattr(visibility, "drop_invisible", lambda quality: False)
    whole = compress()
    alpha = 1.0 / (1.0 + np.exp(-whole.opacity.astype(np.float64)))
    seen = whole.take(np.flatnonzero(alpha > 1e-5))
    assert seen.count == dropped.count >= 1 and whole.count == 2000
    key = lambda s: np.lexsort(s.means.T)  # noqa: E731
    a, b = seen.take(key(seen)), dropped.take(key(dropped))
    for name in ("means", "quats", "log_scales", "f_dc", "opacity"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_a_scene_with_no_visible_splat_is_written_whole():
    scene = make_scene(500, 0, seed=6)
    scene.opacity[:] = -12.0
    res = Compressor(device="cpu", settings=CompressSettings(quality=80)).compress(ply_bytes(scene), name="s.ply")
    assert res.count == 500 and res.edits.dropped_invisible == 0


def test_each_level_keeps_the_palette_fraction_the_readme_table_states():
    """README 'Quality levels': 100 keeps splat-transform's SH palette size, 90-99 90 %, 70-89
    50 %, below 70 37.5 % (whole rows of 64 entries); a small scene keeps what it has."""
    from sogs_core.quantize.palette.kmeans import palette_size
    from sogs_core.quantize.quality import palette_size_for

    n = 200_000
    base = palette_size(n)
    for level, fraction in ((100, 1.0), (95, 0.9), (90, 0.9), (89, 0.5), (80, 0.5), (70, 0.5), (69, 0.375),
                            (60, 0.375), (0, 0.375)):
        want = base if fraction == 1.0 else max(64, int(round(base * fraction / 64)) * 64)
        assert palette_size_for(n, level) == want, level
    assert palette_size_for(40, 80) == palette_size(40)


def test_a_smaller_colour_codebook_only_within_one_display_step():
    """Below 90 the colour codebook takes 128 levels only where their weighted RMS colour error
    stays within COLOUR_ERROR_BOUND (one 8-bit step); wide colours keep 256."""
    import torch

    from sogs_core.model.sh import SH_C0
    from sogs_core.quantize.quality import COLOUR_ERROR_BOUND
    from sogs_core.quantize.scene import colour_codebook

    g = torch.Generator().manual_seed(3)
    weight = torch.ones(20000, 3)
    for spread, expect in ((0.5, 128), (4.0, 256)):
        f_dc = (torch.rand(20000, 3, generator=g) * 2 - 1) * spread
        cb, idx = colour_codebook(f_dc, weight, 128)
        assert len(cb) == 256 and len(torch.unique(cb)) == expect
        rms = float(((cb[idx.long()] - f_dc) * SH_C0).pow(2).mean().sqrt())
        if expect == 128:
            assert rms <= COLOUR_ERROR_BOUND
