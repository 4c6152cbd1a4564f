"""A splat's rotation and scales may be stored in any of the 24 spellings of the same Gaussian:
below --quality 100 the file holds the one nearest the identity, the Gaussians stay the same,
rotations already on the SOG grid stay exactly on it, and comparisons see through the spelling."""
from __future__ import annotations

import numpy as np
import torch

from sogs_core.formats import read_splats
from sogs_core.formats.ply.write import ply_bytes
from sogs_core.formats.sog.codes import decode_quats, encode_quats
from sogs_core.model.rotations import quat_to_matrix
from sogs_core.pipeline.compressor import Compressor
from sogs_core.pipeline.fidelity import fidelity
from sogs_core.quantize.spelling import (CUBE, CUBE_CONJ, FLIPS, align_spelling, nearest_identity_rows, on_sog_grid,
                                         respell_near_identity)
from sogs_core.settings import CompressSettings
from sogs_core.webp.codec import decode_webp

from .conftest import make_scene


def _covariances(quats: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    m = quat_to_matrix(quats.double()) * torch.exp(log_scales.double())[:, None, :]
    return m @ m.transpose(1, 2)


def _random_gaussians(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    quats = torch.randn(n, 4, generator=g)
    return quats / quats.norm(dim=1, keepdim=True), torch.randn(n, 3, generator=g) - 4.0


def test_the_cube_has_24_distinct_rotations_flips_first():
    assert CUBE.shape == (24, 4)
    dots = (CUBE @ CUBE.T).abs()
    assert torch.allclose(dots.diagonal(), torch.ones(24, dtype=torch.float64))
    assert (dots - torch.eye(24, dtype=torch.float64)).max() < 1 - 1e-9
    # the first FLIPS are the identity and the three half turns: components 0 or +-1
    assert torch.all((CUBE[:FLIPS].abs() - 0.5).abs() == 0.5)


def test_respelling_keeps_every_gaussian_and_puts_w_first():
    quats, scales = _random_gaussians(20000)
    q2, s2 = respell_near_identity(quats, scales)
    c0, c1 = _covariances(quats, scales), _covariances(q2, s2)
    assert ((c1 - c0).norm(dim=(1, 2)) / c0.norm(dim=(1, 2))).max() < 1e-5
    # the nearest of 24 rotations is within 62.8 degrees: w >= cos(31.4 deg), the largest component
    assert q2[:, 0].abs().min() > 0.85
    assert torch.all(encode_quats(q2)[:, 3] == 252)
    assert sorted(s2[0].tolist()) == sorted(scales[0].tolist())
    # and back: the original spelling is the one nearest the original rotation
    q3, s3 = align_spelling(quats, q2, s2)
    assert torch.minimum((q3 - quats).abs().amax(1), (q3 + quats).abs().amax(1)).max() < 1e-5
    assert torch.equal(s3, scales)


def test_the_closed_form_choice_is_the_best_of_all_24_spellings():
    # random rotations, and structured ones full of zeros and equal components (exact ties: the
    # lower row wins, as an argmax over the 24 scores does)
    g = torch.Generator().manual_seed(3)
    values = torch.tensor([0.0, 0.5, -0.5, 1.0, -1.0, 0.3, -0.3, 0.7, -0.7], dtype=torch.float64)
    structured = values[torch.randint(0, len(values), (50000, 4), generator=g)]
    quats = torch.cat([torch.randn(200000, 4, generator=g, dtype=torch.float64), CUBE, -CUBE,
                       structured[structured.abs().sum(1) > 0]])
    quats = quats / quats.norm(dim=1, keepdim=True)
    scores = (quats @ CUBE_CONJ.T).abs()
    rows, flips = nearest_identity_rows(quats)
    best = scores.max(1).values
    assert (best - scores.gather(1, rows[:, None]).squeeze(1)).max() < 1e-6
    # where no other row comes within float32's reach, the very row of the argmax
    second = scores.topk(2, dim=1).values[:, 1]
    clear = best - second > 1e-6
    assert clear.float().mean() > 0.9
    assert torch.equal(rows[clear], scores.argmax(1)[clear])
    # exact ties (equal but for float64's rounding): the lowest of the tied rows
    tied = (scores >= best[:, None] - 1e-12)
    many = tied.sum(1) > 1
    assert many.sum() > 1000
    lowest = tied.long().argmax(1)
    assert torch.equal(rows[many], lowest[many])
    # the best flip alone (what a rotation on the SOG grid may take): the best of rows 0-3
    flip_scores = scores[:, :FLIPS]
    assert bool((flips < FLIPS).all())
    assert (flip_scores.max(1).values - flip_scores.gather(1, flips[:, None]).squeeze(1)).max() < 1e-6


def test_rotations_on_the_sog_grid_are_only_flipped_and_stay_on_it():
    quats, scales = _random_gaussians(5000, seed=1)
    decoded = decode_quats(encode_quats(quats))
    # a decoded code spells its rotation exactly, but for near-ties of the largest component
    grid = on_sog_grid(decoded)
    assert grid.float().mean() > 0.99 and not on_sog_grid(quats).any()
    on_grid, scales = decoded[grid], scales[grid]
    q2, s2 = respell_near_identity(on_grid, scales)
    assert on_sog_grid(q2).all()
    c0, c1 = _covariances(on_grid, scales), _covariances(q2, s2)
    assert ((c1 - c0).norm(dim=(1, 2)) / c0.norm(dim=(1, 2))).max() < 1e-5
    # some were flipped: a half turn moves the largest component, so the mode changes
    assert (encode_quats(q2)[:, 3] != encode_quats(on_grid)[:, 3]).any()


def test_below_100_the_file_spells_near_identity_and_stays_within_bounds():
    scene = make_scene(4000, 1, seed=5)
    data = ply_bytes(scene)
    codes = {}
    for quality in (100, 80):
        res = Compressor(device="cpu", settings=CompressSettings(quality=quality)).compress(data, name="s.ply")
        bundle = res.package.bundle_bytes()
        # below 100 the splats stored with opacity 0 are left out: the file's own count
        codes[quality] = decode_webp(res.package.files["quats.webp"]).reshape(-1, 4)[:res.count]
        report = fidelity(read_splats(data, "s.ply"), read_splats(bundle, "s.sog"))
        assert report["rotation_max_deg"] <= 1.5 and res.fidelity["rotation_max_deg"] <= 1.5
        assert report["log_scale_max_error"] == res.fidelity["log_scale_max_error"]
    assert np.all(codes[80][:, 3] == 252)
    assert np.mean(codes[100][:, 3] == 252) < 0.9


def test_grid_check_prefiltered_on_a_cpu_equals_the_round_trip():
    """On a CPU `on_sog_grid` encodes only the rotations its cheap test lets through; it must
    accept exactly those that come back from their codes within the tolerance: trained ones,
    decoded ones, negated ones and decoded ones moved by about the tolerance either way."""
    from sogs_core.quantize.spelling import _round_trips

    g = torch.Generator().manual_seed(1)
    q = torch.randn(20000, 4, generator=g, dtype=torch.float64)
    grid = decode_quats(encode_quats(q)).double()
    moved = grid + 8e-6 * torch.randn(grid.shape, generator=g, dtype=torch.float64)
    mix = torch.cat([q, grid, -grid, moved])
    unit = mix / mix.norm(dim=1, keepdim=True)
    exact = _round_trips(unit, 1e-5)
    assert 0.2 < float(exact[len(q) * 3:].float().mean()) < 0.95      # the moved ones fall both ways
    assert torch.equal(on_sog_grid(mix), exact)
    assert torch.equal(on_sog_grid(mix, 1e-3), _round_trips(unit, 1e-3))
