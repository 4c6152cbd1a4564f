"""Streamed SOG (lod-meta.json): the chunk tree, the decimation, and the whole output read back
by the reference implementation (splat-transform reads lod-meta.json) and by our reader."""
from __future__ import annotations

import json
import multiprocessing
import os

import numpy as np
import pytest
import torch

from sogs_core.model.splats import ATTRIBUTES
from sogs_core.pipeline.compressor import Compressor

from sogs_core.settings import CompressSettings
from sogs_core.formats.sog.bounds import QUANTIZATION_BOUNDS
from sogs_core.pipeline.fidelity import fidelity
from sogs_core.pipeline.streamed import write_streamed
from sogs_core.settings import ChunkOptions, StreamedSettings
from sogs_core.edit.decimate import covariances, decimate, ink, merge_pairs
from sogs_core.pipeline.streamed.plan import LevelSource
from sogs_core.quantize.quality import opacity_drop_bits
from sogs_core.quantize.visibility import visible_rows_in_runs
from sogs_core.pipeline.streamed.tree import build_tree, group_leaves, route
from sogs_core.formats.ply.write import write_ply
from sogs_core.formats.lod_meta.read import read_lod_level, read_lod_meta
from sogs_core.formats.ply.read import read_ply

from . import splat_transform
from .conftest import make_scene

SMALL = ChunkOptions(chunk_count=6000, chunk_extent=3.0, chunk_min=1500)


def tensors(s):
    return {k: torch.from_numpy(getattr(s, k)) for k in ATTRIBUTES}


def test_tree_leaves_partition_the_scene_within_the_limits():
    s = make_scene(40_000, 0, seed=5)
    tree, leaves = build_tree(s.means, SMALL)
    every = np.concatenate(leaves)
    assert len(every) == s.count and len(np.unique(every)) == s.count        # each splat in one leaf
    for leaf in leaves:
        assert len(leaf) <= SMALL.chunk_count
        extent = np.ptp(s.means[leaf], axis=0).max()
        assert extent <= SMALL.chunk_extent or len(leaf) <= SMALL.chunk_min
    groups = group_leaves(leaves, SMALL.chunk_count)
    assert [k for g in groups for k in g] == list(range(len(leaves)))      # consecutive, all of them
    sizes = [sum(len(leaves[k]) for k in g) for g in groups]
    assert all(s < 2 * SMALL.chunk_count for s in sizes) and all(s > SMALL.chunk_count for s in sizes[:-1])
    leaf_of = route(tree, s.means)                                          # routing agrees with the cut
    for k, leaf in enumerate(leaves):
        assert (leaf_of[leaf] == k).all()


def test_tree_cut_on_a_device_partitions_alike():
    """The torch path (used on a GPU) follows the same rule; run here on the CPU."""
    from sogs_core.pipeline.streamed.tree import _build_tree_torch

    s = make_scene(30_000, 0, seed=6)
    tree, leaves = _build_tree_torch(torch.from_numpy(s.means), SMALL)
    every = np.concatenate(leaves)
    assert len(every) == s.count and len(np.unique(every)) == s.count
    assert all(len(leaf) <= SMALL.chunk_count for leaf in leaves)
    assert len(leaves) == len(build_tree(s.means, SMALL)[1])


def test_decimation_halves_each_segment_and_never_mixes_them():
    s = make_scene(20_001, 3, seed=2)
    seg = torch.from_numpy(np.random.default_rng(0).integers(0, 5, s.count))
    out, out_seg = decimate(tensors(s), seg)
    before = torch.bincount(seg, minlength=5)
    after = torch.bincount(out_seg, minlength=5)
    assert ((after >= before // 2) & (after <= before // 2 + 1)).all(), (before, after)
    assert (out_seg[1:] >= out_seg[:-1]).all()                              # grouped by segment
    assert all(torch.isfinite(v).all() for v in out.values())
    assert (torch.sigmoid(out["opacity"]) <= 1).all()


def test_closed_form_eigh3_against_torch():
    """`eigen3.eigh3_entries` against torch.linalg.eigh: eigenvalues largest first, orthonormal
    vectors that diagonalise the input, for spread, badly scaled, flat (eigenvalues 1e-11 of the
    largest), two equal, nearly equal and all equal eigenvalues alike; a flat matrix's smallest
    eigenvalue to a relative 1e-3."""
    from sogs_core.edit.decimate import ENTRIES
    from sogs_core.edit.eigen3 import eigh3_entries

    gen = torch.Generator().manual_seed(5)
    eye = torch.eye(3, dtype=torch.float64)
    rot = torch.linalg.qr(torch.randn(6000, 3, 3, generator=gen, dtype=torch.float64)).Q
    spectra = torch.exp(-25 * torch.rand(6000, 3, generator=gen, dtype=torch.float64))
    spectra[1000:2000] = torch.tensor([2.0, 2.0, 1e-3], dtype=torch.float64)
    spectra[2000:3000] = torch.tensor([5.0, 1e-4, 1e-4], dtype=torch.float64)
    spectra[3000:4000] = torch.tensor([1.0, 1.0 + 1e-9, 1.0 - 1e-9], dtype=torch.float64)
    a = rot @ torch.diag_embed(spectra) @ rot.transpose(1, 2)
    a[4000:4500] = 2.5 * eye                                     # all equal
    a[4500:5000] = torch.diag_embed(torch.rand(500, 3, generator=gen, dtype=torch.float64))   # diagonal
    values, vectors = eigh3_entries([a[:, i, j] for i, j in ENTRIES])
    big = a.abs().amax((1, 2))
    ref = torch.linalg.eigh(a).eigenvalues.flip(1)
    assert ((values - ref).abs().amax(1) <= 1e-12 * big).all()
    assert (values[:, :-1] >= values[:, 1:] - 1e-12 * big[:, None]).all()
    assert torch.allclose(vectors.transpose(1, 2) @ vectors, eye.expand(len(a), 3, 3), atol=1e-12)
    back = vectors @ torch.diag_embed(values) @ vectors.transpose(1, 2)
    assert ((back - a).abs().amax((1, 2)) <= 1e-12 * big).all()
    flat = (spectra[:1000, :].min(1).values < 1e-9 * spectra[:1000, :].max(1).values).nonzero().squeeze(1)
    assert len(flat) > 10
    smallest = spectra[flat].min(1).values
    assert ((values[flat, 2] - smallest).abs() <= 1e-3 * smallest).all()


def test_merge_keeps_ink_mean_and_spread():
    """Moment matching: the weighted mean, the second moment and (below alpha 1) the ink are kept."""
    rng = np.random.default_rng(1)
    n = 500
    t = {"means": torch.from_numpy(rng.normal(size=(n, 3)).astype(np.float32)),
         "quats": torch.from_numpy(rng.normal(size=(n, 4)).astype(np.float32)),
         "log_scales": torch.from_numpy(rng.normal(-2, 0.3, (n, 3)).astype(np.float32)),
         "f_dc": torch.from_numpy(rng.normal(size=(n, 3)).astype(np.float32)),
         "opacity": torch.full((n,), -4.0),                                   # faint: alpha never clips
         "f_rest": torch.from_numpy(rng.normal(size=(n, 9)).astype(np.float32))}
    a, b = torch.arange(0, n, 2), torch.arange(1, n, 2)
    m = merge_pairs(t, a, b)
    wa, wb, wm = ink(t["log_scales"][a], t["opacity"][a]), ink(t["log_scales"][b], t["opacity"][b]), \
        ink(m["log_scales"], m["opacity"])
    np.testing.assert_allclose(wm.numpy(), (wa + wb).numpy(), rtol=1e-4)
    pa = (wa / (wa + wb))[:, None]
    mu = pa * t["means"][a].double() + (1 - pa) * t["means"][b].double()
    np.testing.assert_allclose(m["means"].double().numpy(), mu.numpy(), atol=1e-5)
    da, db = t["means"][a].double() - mu, t["means"][b].double() - mu
    spread = (pa[:, :, None] * (da[:, :, None] * da[:, None, :] + covariances(t["quats"][a].double(), t["log_scales"][a].double()))
              + (1 - pa)[:, :, None] * (db[:, :, None] * db[:, None, :] + covariances(t["quats"][b].double(), t["log_scales"][b].double())))
    got = covariances(m["quats"].double(), m["log_scales"].double())
    np.testing.assert_allclose(got.numpy(), spread.numpy(), atol=1e-5)
    np.testing.assert_allclose(m["f_rest"].double().numpy(),
                               (pa * t["f_rest"][a].double() + (1 - pa) * t["f_rest"][b].double()).numpy(), atol=1e-5)


@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    d = tmp_path_factory.mktemp("streamed")
    scene = make_scene(24_000, 3, seed=9)
    write_ply(d / "in.ply", scene)
    with Compressor(device="cpu", settings=CompressSettings(), warm=False) as c:
        res = write_streamed(c, [str(d / "in.ply")], str(d / "out" / "lod-meta.json"),
                             StreamedSettings(levels=3, chunks=SMALL), memory_budget=0)   # read by ranges
    return d, scene, res


def test_streamed_output_is_what_lod_meta_json_promises(streamed):
    d, scene, res = streamed
    assert res.ranged and res.count == scene.count and res.groups > 1
    meta = read_lod_meta(str(d / "out" / "lod-meta.json"))
    assert meta["version"] == 1 and meta["lodLevels"] == 3 and meta["counts"] == res.counts
    assert meta["counts"][0] == scene.count
    for k in (1, 2):                                        # about half of the level before
        assert meta["counts"][k - 1] // 2 <= meta["counts"][k] <= meta["counts"][k - 1] // 2 + 200
    for name in meta["filenames"]:                          # every file a complete SOG folder
        assert os.path.isfile(d / "out" / name)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_reference_reads_every_level_back(streamed, level):
    """splat-transform takes our lod-meta.json as input and gets each level's every splat, with
    the values our own reader decodes."""
    d, scene, res = streamed
    out = d / f"st_level{level}.ply"
    splat_transform.run(str(d / "out" / "lod-meta.json"), "-L", str(level), str(out))
    theirs = read_ply(str(out))
    ours = read_lod_level(str(d / "out" / "lod-meta.json"), level)
    assert theirs.count == ours.count == res.counts[level]
    key = lambda s: np.lexsort(s.means.T)                   # same splats, maybe another file order
    a, b = ours.take(key(ours)), theirs.take(key(theirs))
    for attr in ATTRIBUTES:
        np.testing.assert_allclose(getattr(a, attr), getattr(b, attr), atol=1e-5, rtol=1e-5, err_msg=attr)
    if level == 0:                                          # level 0 is the input within the core bounds
        rep = fidelity(scene, theirs)
        assert rep["unmatched"] == 0
        assert rep["position_max_steps"] <= QUANTIZATION_BOUNDS["position_max_steps"] + 1e-3
        assert rep["rotation_max_deg"] <= QUANTIZATION_BOUNDS["rotation_max_deg"]
        assert rep["opacity_max_error"] <= QUANTIZATION_BOUNDS["opacity_max_error"] + 1e-6


def test_splats_at_opacity_0_are_left_out_of_every_run(tmp_path):
    """Below --quality 100 a streamed SOG writes no splat stored at opacity 0, as a single SOG
    does: lod-meta.json's counts and offsets address what was written, and splat-transform
    reads every level of it back."""
    scene = make_scene(20_000, 0, seed=4)
    gone = np.random.default_rng(4).choice(scene.count, 1_500, replace=False)
    scene.opacity[gone] = -9.0
    write_ply(tmp_path / "in.ply", scene)
    with Compressor(device="cpu", settings=CompressSettings(quality=80), warm=False) as c:
        res = write_streamed(c, [str(tmp_path / "in.ply")], str(tmp_path / "out" / "lod-meta.json"),
                             StreamedSettings(levels=2, chunks=SMALL))
    assert res.groups > 1 and res.count == scene.count
    faint = int((1 / (1 + np.exp(-scene.opacity.astype(np.float64))) < 3 / 255).sum())   # the 1,500 and a few
    assert res.counts[0] == scene.count - res.dropped_invisible and 1_500 <= res.dropped_invisible <= faint
    for level in (0, 1):
        out = tmp_path / f"st_level{level}.ply"
        splat_transform.run(str(tmp_path / "out" / "lod-meta.json"), "-L", str(level), str(out))
        assert read_ply(str(out)).count == read_lod_level(str(tmp_path / "out" / "lod-meta.json"), level).count \
            == res.counts[level]
    rep = fidelity(scene, read_lod_level(str(tmp_path / "out" / "lod-meta.json"), 0))
    # only splats no viewer could draw are missing: under the level's opacity half step (as for
    # a single SOG)
    half_step = 0.5 * (1 << opacity_drop_bits(80)) / 255
    assert rep["unmatched"] == 0 and rep["missing_max_opacity"] < half_step


def test_a_run_of_invisible_splats_keeps_one():
    """Every leaf keeps a run at every level: one whose splats are all at opacity 0 keeps its first."""
    rows, counts = visible_rows_in_runs(np.array([5, 0, 0, 0, 0, 7, 0, 9], np.uint8), 80, [2, 3, 0, 3])
    assert rows.tolist() == [0, 2, 5, 7] and counts == [1, 1, 0, 2]
    assert visible_rows_in_runs(np.array([1, 2], np.uint8), 80, [2]) is None
    assert visible_rows_in_runs(np.array([0, 2], np.uint8), 100, [2]) is None


def test_given_levels_are_kept_not_decimated(tmp_path):
    fine, coarse = make_scene(9000, 0, seed=1), make_scene(2000, 0, seed=1)
    write_ply(tmp_path / "l0.ply", fine)
    write_ply(tmp_path / "l1.ply", coarse)
    with Compressor(device="cpu", warm=False) as c:
        res = write_streamed(c, [str(tmp_path / "l0.ply"), str(tmp_path / "l1.ply")], str(tmp_path / "out"),
                             StreamedSettings(chunks=SMALL))
    assert res.counts == [9000, 2000]
    rep = fidelity(coarse, read_lod_level(str(tmp_path / "out" / "lod-meta.json"), 1))
    assert rep["unmatched"] == 0 and rep["position_max_steps"] <= 0.5 + 1e-3


def test_groups_decimated_together_get_the_levels_they_get_alone():
    """`build_levels_batch` (several chunk groups in one call, as a GPU runs them) gives each
    group exactly the levels it gets alone, even where the groups differ in size and place."""
    from sogs_core.pipeline.streamed.chunk import build_levels, build_levels_batch

    parts = []
    for g, (scale, shift) in enumerate([(1.0, 0.0), (40.0, 500.0), (0.05, -3.0)]):
        s = make_scene(3000 + 500 * g, 1, seed=20 + g)
        s.means[:] = s.means * scale + shift
        s.log_scales[:] += np.log(scale)
        parts.append((s, [1200, 900, s.count - 2100]))
    together = build_levels_batch(parts, 3, torch.device("cpu"))
    for (s, sizes), got in zip(parts, together):
        alone = build_levels(s, sizes, 3, torch.device("cpu"))
        assert [c for _, c in got.levels] == [c for _, c in alone.levels]
        assert got.bounds == alone.bounds
        for (a, _), (b, _) in zip(alone.levels, got.levels):
            for k in ATTRIBUTES:
                np.testing.assert_array_equal(getattr(a, k), getattr(b, k))


@pytest.mark.parametrize("sh", [0, 3])
def test_parts_uploaded_one_by_one_are_the_joined_splats(sh):
    """`parts_tensors` (each group's splats copied into its rows on the device) holds what
    `splats_tensors` of the joined splats holds, SH-less scenes included."""
    from sogs_core.model.splats import Splats
    from sogs_core.pipeline.streamed.chunk import parts_tensors, splats_tensors

    parts = [make_scene(n, sh, seed=n) for n in (300, 1, 77)]
    got = parts_tensors(parts, torch.device("cpu"))
    want = splats_tensors(Splats.concat(parts), torch.device("cpu"))
    for k in ATTRIBUTES:
        assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k])


def test_levels_bounds_made_on_the_device_match_the_host_ones():
    """The leaves' boxes `build_levels` makes beside the merge equal the host's `leaf_bounds`
    over the same levels (the one used for levels given as inputs), leaf by leaf."""
    from sogs_core.pipeline.streamed.chunk import build_levels, leaf_bounds

    s = make_scene(5000, 1, seed=31)
    sizes = [1500, 0, 2000, 1500]
    made = build_levels(s, sizes, 3, torch.device("cpu"))
    host = leaf_bounds(made.levels, len(sizes))
    assert len(made.bounds) == 4
    for got, want in zip(made.bounds, host):
        np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-12, atol=1e-12)


def test_groups_decimated_together_write_the_same_streamed_sog(tmp_path):
    """`write_streamed` with three groups per decimation call writes the bytes it writes with
    one, and with a splat budget per call that splits those three again; every leaf's run at
    every level stays inside the leaf's bound."""
    scene = make_scene(24_000, 1, seed=9)
    write_ply(tmp_path / "in.ply", scene)
    results = {}
    with Compressor(device="cpu", warm=False) as c:
        for k, splats in ((1, None), (3, None), ("3s", 9_000)):
            extra = {} if splats is None else {"decimation_splats": splats}
            results[k] = write_streamed(c, [str(tmp_path / "in.ply")], str(tmp_path / f"out{k}" / "lod-meta.json"),
                                        StreamedSettings(levels=3, chunks=SMALL), decimation_groups=3 if k != 1 else 1,
                                        **extra)
    one, three = results[1], results[3]
    assert three.groups == one.groups >= 3
    assert three.counts == one.counts and three.output_bytes == one.output_bytes
    assert results["3s"].counts == one.counts and results["3s"].output_bytes == one.output_bytes
    meta = read_lod_meta(str(tmp_path / "out3" / "lod-meta.json"))
    from sogs_core.formats.lod_meta.read import leaves
    for level in range(3):
        splats = read_lod_level(str(tmp_path / "out3" / "lod-meta.json"), level)
        start = 0
        for leaf in leaves(meta["tree"]):
            count = leaf["lods"][str(level)]["count"]
            run = splats.means[start:start + count]
            lo, hi = np.array(leaf["bound"]["min"]), np.array(leaf["bound"]["max"])
            assert (run >= lo - 1e-3).all() and (run <= hi + 1e-3).all()
            start += count
        assert start == splats.count


def test_a_crash_between_chunks_leaves_no_lod_meta_json(tmp_path, monkeypatch):
    write_ply(tmp_path / "in.ply", make_scene(15_000, 0, seed=4))
    out = tmp_path / "out"
    out.mkdir()
    (out / "lod-meta.json").write_text("{}")               # an old index must not survive a failed rewrite
    import sogs_core.pipeline.streamed.units as streamed_mod

    real = streamed_mod.run_group
    calls = []

    def crash_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("node lost")
        return real(*args, **kwargs)

    monkeypatch.setattr(streamed_mod, "run_group", crash_on_second)
    with Compressor(device="cpu", warm=False) as c, pytest.raises(RuntimeError):
        write_streamed(c, [str(tmp_path / "in.ply")], str(out / "lod-meta.json"),
                       StreamedSettings(levels=2, chunks=SMALL))
    assert not (out / "lod-meta.json").exists()
    assert any(name.startswith("0_") for name in os.listdir(out))   # a group was written, the index not


def test_two_million_splats_with_small_chunks(tmp_path):
    """The CI-sized big scene: 2M splats read by ranges, many chunk groups, two levels."""
    from sogs_core.model.synth import synthetic_scene

    write_ply(tmp_path / "big.ply", synthetic_scene(2_000_000, 0, seed=3))
    opts = ChunkOptions(chunk_count=256 * 1024, chunk_extent=16.0, chunk_min=8 * 1024)
    with Compressor(device="cpu", warm=False) as c:
        res = write_streamed(c, [str(tmp_path / "big.ply")], str(tmp_path / "out"),
                             StreamedSettings(levels=2, chunks=opts), memory_budget=64 << 20)
    assert res.ranged and res.counts[0] == 2_000_000 and res.groups >= 8
    meta = json.loads((tmp_path / "out" / "lod-meta.json").read_text())
    # level 0: a file per group; level 1: a file per two neighbouring groups
    assert meta["counts"] == res.counts and len(meta["filenames"]) == res.groups + (res.groups + 1) // 2
    assert res.fidelity["position_max_steps"] <= 0.5 + 1e-3


def test_level_source_reads_ranges_only_above_the_budget(tmp_path):
    write_ply(tmp_path / "in.ply", make_scene(3000, 1, seed=2))
    assert LevelSource(str(tmp_path / "in.ply"), memory_budget=0).ranged
    whole = LevelSource(str(tmp_path / "in.ply"))
    assert not whole.ranged
    # sorted, unsorted with a repeat, the last row by a negative index: the ranged gather (rows
    # taken as bytes, then viewed as records) reads what the whole read holds
    for idx in (np.array([5, 17, 2999]), np.array([2999, 0, 17, 17, 1500]), np.array([-1, 3])):
        a, b = LevelSource(str(tmp_path / "in.ply"), memory_budget=0).gather(idx), whole.gather(idx)
        assert a.count == len(idx)
        for attr in ATTRIBUTES:
            np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    with pytest.raises(IndexError):
        LevelSource(str(tmp_path / "in.ply"), memory_budget=0).gather(np.array([3000]))


def test_ranged_positions_are_the_means_and_refuse_non_finite_ones(tmp_path):
    """A mapped PLY's positions (copied by row blocks on threads: 150k rows are three blocks)
    are its means exactly; a NaN in the last block is refused with its count and first row."""
    from sogs_core.model.errors import PlyError

    scene = make_scene(150_000, 0, seed=3)
    write_ply(tmp_path / "in.ply", scene)
    np.testing.assert_array_equal(LevelSource(str(tmp_path / "in.ply"), memory_budget=0).positions(), scene.means)
    scene.means[149_000, 2] = np.nan
    write_ply(tmp_path / "nan.ply", scene)
    with pytest.raises(PlyError, match=r"non-finite values .* in means of 1 splats \(first at splat 149000\)"):
        LevelSource(str(tmp_path / "nan.ply"), memory_budget=0).positions()


def test_every_level_is_scored_against_the_input(streamed):
    """The render metric of a streamed SOG: one score per level, against the whole input; level 0
    is the compression alone, the coarser levels show the merges too and score lower."""
    from sogs_core.pipeline.streamed.render_levels import level_render_scores
    from sogs_core.render.score import RenderMetricSettings

    d, scene, res = streamed
    levels = level_render_scores(str(d / "out" / "lod-meta.json"), scene,
                                 RenderMetricSettings(views=2, width=64, height=64))
    assert [lv["level"] for lv in levels] == [0, 1, 2]
    assert [lv["count"] for lv in levels] == res.counts
    assert levels[0]["render_psnr"] > 30.0
    assert levels[0]["render_psnr"] > levels[1]["render_psnr"] > levels[2]["render_psnr"]
    assert all(lv["render_psnr_worst_view"] <= lv["render_psnr"] for lv in levels)


def test_cli_render_metric_on_a_streamed_sog(tmp_path):
    from .test_cli import cli

    write_ply(tmp_path / "in.ply", make_scene(3000, 1, seed=4))
    out = tmp_path / "out" / "lod-meta.json"
    r = cli("compress", str(tmp_path / "in.ply"), str(out), "--device", "cpu", "--lod-levels", "2",
            "--render-metric", "--json", "-q")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.strip().splitlines()[-1])
    levels = report["render_levels"]
    assert [lv["level"] for lv in levels] == [0, 1] and [lv["count"] for lv in levels] == report["counts"]
    assert report["fidelity"]["render_psnr"] == levels[0]["render_psnr"]
    assert "level 1 (" in r.stdout
    # read by ranges (over the budget): the metric would need the input whole, and says so
    r = cli("compress", str(tmp_path / "in.ply"), str(tmp_path / "o2" / "lod-meta.json"), "--device", "cpu",
            "--lod-levels", "2", "--render-metric", "--memory-budget", "0", "--json", "-q")
    assert r.returncode == 0, r.stderr
    assert "render metric: skipped" in r.stdout
    assert json.loads(r.stdout.strip().splitlines()[-1])["render_levels"] is None
    # --processes: a streamed SOG's option, at least 1
    for args, says in ((["o.sog", "--processes", "2"], "applies to a streamed SOG"),
                       (["o3/lod-meta.json", "--processes", "0"], "at least 1"),
                       (["o3/lod-meta.json", "--processes", "many"], "a number or auto")):
        r = cli("compress", str(tmp_path / "in.ply"), str(tmp_path / args[0]), "--device", "cpu", *args[1:])
        assert r.returncode == 2 and says in r.stderr, r.stderr


def test_several_processes_write_the_same_streamed_sog(tmp_path, monkeypatch):
    """`write_streamed(processes=2 and 3)`: the groups split into runs, each written by its own
    spawned process, the buckets two runs share packed here from what both hand over as soon
    as their groups are done, give the files one process writes, byte for byte, and report
    every group's progress."""
    import sogs_core.pipeline.streamed.processes as procs
    from sogs_core.pipeline.streamed.processes import split_groups

    shared = []
    real_pack = procs.compress_bucket

    def spy(compressor, level, bucket, parts, write):
        shared.append((level, bucket))
        return real_pack(compressor, level, bucket, parts, write)

    monkeypatch.setattr(procs, "compress_bucket", spy)
    scene = make_scene(30_000, 1, seed=12)
    write_ply(tmp_path / "in.ply", scene)
    results, seen = {}, []
    with Compressor(device="cpu", warm=False) as c:
        for k in (1, 2, 3):
            results[k] = write_streamed(c, [str(tmp_path / "in.ply")], str(tmp_path / f"out{k}" / "lod-meta.json"),
                                        StreamedSettings(levels=3, chunks=SMALL), processes=k,
                                        progress=(lambda d, t: seen.append((d, t))) if k == 2 else None)
    one = results[1]
    assert one.groups >= 4 and [results[k].processes for k in (1, 2, 3)] == [1, 2, 3]
    assert any(shared), "no bucket was shared between runs: the test no longer covers the handoff"
    for k in (2, 3):
        assert results[k].groups == one.groups and results[k].counts == one.counts and results[k].files == one.files
        for path in sorted((tmp_path / "out1").rglob("*")):
            if path.is_file():
                twin = tmp_path / f"out{k}" / path.relative_to(tmp_path / "out1")
                assert twin.read_bytes() == path.read_bytes(), (k, path)
    assert seen and seen[-1] == (one.groups, one.groups)
    # the calling process writing a run of its own beside two processes (as on a GPU): the same
    # files, every group's progress
    seen.clear()
    with Compressor(device="cpu", warm=False) as c:
        here = write_streamed(c, [str(tmp_path / "in.ply")], str(tmp_path / "here" / "lod-meta.json"),
                              StreamedSettings(levels=3, chunks=SMALL), processes=2, write_here=True,
                              progress=lambda d, t: seen.append((d, t)))
    assert here.processes == 3 and here.files == one.files and seen[-1] == (one.groups, one.groups)
    for path in sorted((tmp_path / "out1").rglob("*")):
        if path.is_file():
            assert (tmp_path / "here" / path.relative_to(tmp_path / "out1")).read_bytes() == path.read_bytes(), path
    # consecutive runs of groups, in order, cut inside a bucket where that evens them out
    plan_groups = list(range(one.groups))
    runs = split_groups([type("G", (), {"splats": 1, "group": g})() for g in plan_groups], 2)
    assert [g.group for run in runs for g in run] == plan_groups and abs(len(runs[0]) - len(runs[1])) <= 1
    with pytest.raises(ValueError, match="processes"):
        write_streamed(None, [], str(tmp_path / "x"), StreamedSettings(), processes=0)


_WRITER_KILLED = """
import sys, time
from sogs_core.pipeline.compressor import Compressor
from sogs_core.pipeline.streamed.processes import WritingProcesses
team = WritingProcesses(Compressor(device="cpu", warm=False), [sys.argv[1]], 2)
print(" ".join(str(pid) for pid in team.wait_started()), flush=True)
time.sleep(int(sys.argv[2]))      # killed before it hands them any work (or after they start)
"""


def _ended(pid: int) -> bool:
    """Gone, or a zombie nobody reaps (a container's first process may not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
@pytest.mark.parametrize("wait", [0, 6])
def test_writing_processes_end_when_the_writer_is_killed(tmp_path, wait):
    """A writer killed outright (SIGKILL: no `close`) leaves no writing process behind, whether
    it dies while they are still starting or once they wait for work."""
    import signal
    import subprocess
    import sys
    import time

    write_ply(tmp_path / "in.ply", make_scene(2_000, 0, seed=3))
    writer = subprocess.Popen([sys.executable, "-c", _WRITER_KILLED, str(tmp_path / "in.ply"), "60"],
                              stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in writer.stdout.readline().split()]
    assert len(pids) == 2
    time.sleep(wait)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    end = time.monotonic() + 60
    while time.monotonic() < end and not all(_ended(p) for p in pids):
        time.sleep(0.2)
    left = [p for p in pids if not _ended(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, f"writing processes {left} outlived their writer"


def test_processes_take_runs_of_groups_the_largest_as_small_as_it_can_be():
    """`split_groups`: consecutive runs of groups, cut so that the largest run in splats is
    smallest (26 groups over two processes are 13 and 13, where whole buckets of 8 gave 16 and
    10); splat counts, not group counts, decide; never more runs than groups."""
    from sogs_core.pipeline.streamed.processes import split_groups

    def groups(splats):
        return [type("G", (), {"splats": n, "group": g})() for g, n in enumerate(splats)]

    for parts, want in ((1, [26]), (2, [13, 13]), (3, [9, 9, 8]), (4, [7, 7, 7, 5]), (9, [3] * 8 + [2]),
                        (40, [1] * 26)):
        runs = split_groups(groups([1] * 26), parts)
        assert [len(r) for r in runs] == want, parts
        assert [g.group for r in runs for g in r] == list(range(26))
    # heavy groups first: the smallest largest run is 54 splats (5 heavy | 3 heavy + 24 light)
    runs = split_groups(groups([10] * 8 + [1] * 24), 2)
    assert [len(r) for r in runs] == [5, 27]
    assert split_groups([], 2) == [[]]


def test_auto_processes_for_large_scenes(tmp_path, monkeypatch):
    """`processes=None` (the CLI's default, auto): one process for a scene below
    AUTO_PROCESSES_MIN_SPLATS, one per torch thread on a CPU above it; on a GPU
    AUTO_GPU_PROCESSES (three) from AUTO_GPU_SHARED_MIN_SPLATS where the device has the memory
    for them, else one."""
    import sogs_core.pipeline.streamed.processes as procs

    monkeypatch.setattr(torch, "get_num_threads", lambda: 6)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    big, huge = procs.AUTO_PROCESSES_MIN_SPLATS, procs.AUTO_GPU_SHARED_MIN_SPLATS
    assert [procs.auto_processes(cpu, big - 1), procs.auto_processes(cpu, big), procs.auto_processes(cpu, huge)] \
        == [1, 6, 6]
    memory = {"bytes": procs.AUTO_GPU_SHARED_MIN_MEMORY}
    monkeypatch.setattr(procs, "_device_memory", lambda device: memory["bytes"])
    assert [procs.auto_processes(cuda, big), procs.auto_processes(cuda, huge - 1), procs.auto_processes(cuda, huge)] \
        == [1, 1, 3]
    memory["bytes"] -= 1
    assert procs.auto_processes(cuda, huge) == 1
    # the calling process writes a run of its own only on a GPU, and only once the setting says so
    assert not procs.writes_here(cpu) and procs.writes_here(cuda) == procs.WRITE_HERE_ON_GPU
    monkeypatch.setattr(procs, "WRITE_HERE_ON_GPU", True)
    assert procs.writes_here(cuda) and not procs.writes_here(cpu)
    write_ply(tmp_path / "in.ply", make_scene(8_000, 0, seed=3))
    with Compressor(device="cpu", warm=False) as c:
        res = write_streamed(c, [str(tmp_path / "in.ply")], str(tmp_path / "out" / "lod-meta.json"),
                             StreamedSettings(levels=2, chunks=SMALL), processes=None)
    assert res.processes == 1 and res.count == 8_000
    # where auto takes several, they write it; the input below the budget is not "ranged" (the
    # render metric may read it whole), though each process reads only its rows of the PLY
    import sogs_core.pipeline.streamed.write as write_mod

    runs = []
    real = procs.WritingProcesses.run

    def spy(self, plan, folder, batch, parts, *rest, **named):
        runs.append((len(self.procs), len(parts)))
        return real(self, plan, folder, batch, parts, *rest, **named)

    monkeypatch.setattr(write_mod, "auto_processes", lambda device, splats: 2)
    monkeypatch.setattr(procs.WritingProcesses, "run", spy)
    write_ply(tmp_path / "in2.ply", make_scene(30_000, 0, seed=12))
    with Compressor(device="cpu", warm=False) as c:
        res = write_streamed(c, [str(tmp_path / "in2.ply")], str(tmp_path / "out2" / "lod-meta.json"),
                             StreamedSettings(levels=2, chunks=SMALL), memory_budget=1 << 30, processes=None)
    assert res.processes == 2 and runs == [(2, 2)] and not res.ranged and res.count == 30_000


def test_processes_on_a_cpu_share_its_threads(monkeypatch):
    """Each writing process on a CPU gets its share of this process's torch threads, at least
    one (more threads than cores slow torch down many times over)."""
    from sogs_core.pipeline.streamed.processes import cpu_threads_each

    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    assert [cpu_threads_each(k) for k in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]


def test_processes_on_a_gpu_cap_their_allocator(tmp_path, monkeypatch):
    """Each writing process on a GPU holds torch's caching allocator to its MiB as a share of the
    device's memory (never above all of it), on the device's index; 0 leaves it uncapped; the
    writer hands its `process_gpu_mib` (default settings.PROCESS_GPU_MEMORY_MIB) to every
    process and refuses a negative one."""
    import types

    import sogs_core.pipeline.streamed.processes as procs
    from sogs_core.settings import PROCESS_GPU_MEMORY_MIB

    calls = []
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda dev: types.SimpleNamespace(total_memory=80 << 30))
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda f, dev: calls.append((f, dev)))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    procs.cap_gpu_memory("cuda:1", 2800)
    procs.cap_gpu_memory("cuda", 0)
    procs.cap_gpu_memory("cuda", 100 << 10)
    # torch wants the device's index: "cuda" alone is the current device
    assert calls == [(2800 / (80 << 10), 1), (1.0, 0)]
    # running out under the cap names the setting to raise; other errors, and no cap, pass as they are
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 248.00 MiB")
    explained = procs.over_cap(oom, 2800)
    assert isinstance(explained, RuntimeError) and "--process-gpu-memory" in str(explained) and "2800 MiB" in str(explained)
    assert procs.over_cap(oom, 0) is oom
    other = ValueError("bad row")
    assert procs.over_cap(other, 2800) is other

    given = []
    real_init = procs.WritingProcesses.__init__

    def spy(self, compressor, inputs, count, gpu_mib=0, mps=False):
        given.append(gpu_mib)
        assert not mps                    # a CPU's processes never start an MPS server
        real_init(self, compressor, inputs, count, gpu_mib, mps)

    monkeypatch.setattr(procs.WritingProcesses, "__init__", spy)
    write_ply(tmp_path / "in.ply", make_scene(20_000, 0, seed=5))
    out = str(tmp_path / "out" / "lod-meta.json")
    with Compressor(device="cpu", warm=False) as c:
        with pytest.raises(ValueError, match="process_gpu_mib"):
            write_streamed(c, [str(tmp_path / "in.ply")], out, StreamedSettings(levels=2, chunks=SMALL),
                           processes=2, process_gpu_mib=-1)
        res = write_streamed(c, [str(tmp_path / "in.ply")], out, StreamedSettings(levels=2, chunks=SMALL), processes=2)
    assert res.processes == 2 and given == [PROCESS_GPU_MEMORY_MIB] and not res.mps


def test_shared_buckets_complete_across_runs_or_fail_loudly():
    """`SharedBuckets`: what two runs hand over of a shared bucket completes it (the packer's
    `absorb`), in group order; a bucket still missing a group is an error, never a file
    silently left out."""
    from sogs_core.pipeline.streamed.processes import SharedBuckets
    from sogs_core.pipeline.streamed.schedule import BucketPacker

    packer = BucketPacker(4)
    assert packer.absorb({(2, 0): {0: "a", 1: "b"}}) == []
    assert packer.absorb({(2, 0): {3: "d", 2: "c"}, (1, 1): {2: "x"}}) == [(2, 0, ["a", "b", "c", "d"])]
    assert packer.waiting == {(1, 1): {2: "x"}}
    with SharedBuckets(None, 4, "unused") as shared:
        shared.add({(1, 1): {2: "x"}})
        with pytest.raises(RuntimeError, match=r"level 1 bucket 1: no coarse splats came back for groups \[3\]"):
            shared.finish()
    with SharedBuckets(None, 4, "unused") as shared:
        assert shared.finish() == []
    # a run of groups 2 and 3 hands over the level-2 bucket (groups 0-3) once both are done, and
    # never the level-1 bucket it completes itself
    run = BucketPacker(4)
    assert run.add(2, ["a1", "a2"]) == [] and run.hand_off({2, 3}) == {}
    assert run.add(3, ["b1", "b2"]) == [(1, 1, ["a1", "b1"])]
    assert run.hand_off({2, 3}) == {(2, 0): {2: "a2", 3: "b2"}} and run.waiting == {}


def test_runs_do_their_shared_groups_first():
    """`edge_first`: a run's groups whose coarsest bucket another run also holds come first
    (those at its two ends), the rest after, each set in order; one level has no buckets."""
    from sogs_core.pipeline.streamed.processes import edge_first

    groups = [type("G", (), {"group": g})() for g in range(26)]
    first, second = groups[:13], groups[13:]
    assert [g.group for g in edge_first(first, 26, 4)] == [8, 9, 10, 11, 12] + list(range(8))
    assert [g.group for g in edge_first(second, 26, 4)] == [13, 14, 15] + list(range(16, 26))
    assert [g.group for g in edge_first(second, 26, 1)] == list(range(13, 26))


def test_a_failing_process_stops_the_write_with_its_error(tmp_path):
    """One process that cannot do its share (here: its input is gone) ends the whole write with
    that process's own error, and the others are stopped; nothing waits for them to finish."""
    from sogs_core.pipeline.streamed.plan import LevelSource, plan_streamed
    from sogs_core.pipeline.streamed.processes import WritingProcesses, split_groups

    write_ply(tmp_path / "in.ply", make_scene(30_000, 0, seed=13))
    settings = StreamedSettings(levels=2, chunks=SMALL)
    plan = plan_streamed([LevelSource(str(tmp_path / "in.ply"))], settings)
    runs = split_groups(plan.groups, 2)
    assert len(runs) == 2
    with Compressor(device="cpu", warm=False) as c, pytest.raises(Exception, match="gone.ply"):
        with WritingProcesses(c, [str(tmp_path / "gone.ply")], 2) as team:
            team.run(plan, str(tmp_path / "out"), 1, runs)
    assert not multiprocessing.active_children()
    # the run here failing (its source cannot be read) ends the write as well, with its error
    broken = LevelSource(str(tmp_path / "in.ply"))
    broken.gather = lambda index: (_ for _ in ()).throw(OSError("the run here lost its input"))
    with Compressor(device="cpu", warm=False) as c, pytest.raises(OSError, match="the run here lost its input"):
        with WritingProcesses(c, [str(tmp_path / "in.ply")], 1) as team:
            team.run(plan, str(tmp_path / "out_here"), 1, runs, here=[broken])
    assert not multiprocessing.active_children()


def test_processes_started_before_the_plan_end_with_it(tmp_path, monkeypatch):
    """The writing processes start before the plan is made: a plan that fails leaves none of
    them running, and processes with no run of their own (fewer groups than processes) are let
    go while the others write the same files one process writes."""
    import sogs_core.pipeline.streamed.write as write_mod

    write_ply(tmp_path / "in.ply", make_scene(12_000, 0, seed=14))
    settings = StreamedSettings(levels=2, chunks=SMALL)

    def broken(*args, **kwargs):
        raise RuntimeError("no plan today")

    with Compressor(device="cpu", warm=False) as c:
        with monkeypatch.context() as m:
            m.setattr(write_mod, "plan_streamed", broken)
            with pytest.raises(RuntimeError, match="no plan today"):
                write_streamed(c, [str(tmp_path / "in.ply")], str(tmp_path / "x" / "lod-meta.json"), settings,
                               processes=3)
        assert not multiprocessing.active_children()
        one = write_streamed(c, [str(tmp_path / "in.ply")], str(tmp_path / "one" / "lod-meta.json"), settings)
        three = write_streamed(c, [str(tmp_path / "in.ply")], str(tmp_path / "three" / "lod-meta.json"), settings,
                               processes=3)
    assert one.groups == 2 and three.processes == 2 and not multiprocessing.active_children()
    for name in sorted(os.listdir(tmp_path / "one")):
        for f in sorted(os.listdir(tmp_path / "one" / name)) if os.path.isdir(tmp_path / "one" / name) else [""]:
            a, b = (tmp_path / "one" / name / f), (tmp_path / "three" / name / f)
            assert a.read_bytes() == b.read_bytes(), f"{name}/{f}"


def test_the_backfill_hands_out_chunk_groups_in_batches_that_still_spread():
    """`StreamedScene._take`: a bucket waiting goes alone; otherwise up to --groups-per-call groups
    (and at most DECIMATION_SPLATS splats) in one call, fewer once the groups left would not give
    every actor's calls in flight a share."""
    from types import SimpleNamespace

    from ray_jobs.pool import IN_FLIGHT_PER_ACTOR
    from ray_jobs.streamed import StreamedScene
    from sogs_core.pipeline.streamed.schedule import BucketUnit, GroupUnit, StreamedSchedule
    from sogs_core.pipeline.streamed.units import DECIMATION_SPLATS

    scene = StreamedScene(None, [], None, {}, 0, 0, "auto", lambda msg: None)
    specs = [SimpleNamespace(group=g, splats=1000) for g in range(10)]
    schedule = StreamedSchedule(specs)
    one_actor = 1
    # 10 groups over one actor's calls in flight: a share of ceil(10 / 2) = 5, so the cap of 3
    taken = scene._take(schedule, 3, one_actor)
    assert [u.spec.group for u in taken] == [0, 1, 2] and IN_FLIGHT_PER_ACTOR == 2
    assert [u.spec.group for u in scene._take(schedule, 1, one_actor)] == [3]          # one a call
    assert len(scene._take(schedule, 8, one_actor)) == 3          # 6 left: a share of 3
    schedule.buckets.append(BucketUnit(1, 0, []))
    assert isinstance(scene._take(schedule, 8, one_actor)[0], BucketUnit)              # a bucket alone
    assert [u.spec.group for u in scene._take(schedule, 8, 4)] == [7]                   # 3 left, 4 actors
    big = StreamedSchedule([SimpleNamespace(group=g, splats=DECIMATION_SPLATS // 2 + 1) for g in range(4)])
    assert len(scene._take(big, 8, one_actor)) == 1               # two would pass the splat cap
    assert all(isinstance(u, GroupUnit) for u in scene._take(big, 8, one_actor))
    with pytest.raises(ValueError, match="groups-per-call"):
        StreamedScene(None, [], None, {}, 0, 0, "auto", lambda msg: None, groups_per_call=0)


def test_writing_processes_see_the_writers_environment_as_it_is_now(tmp_path, monkeypatch):
    """A writing process forked by a process server that started earlier still sees what the
    writer set since (--max-scene-splats, the GPU allocator's settings): a scene cap set after
    the server started refuses the scene that process reads whole, as it refuses it here."""
    from sogs_core.pipeline.process_server import start_early, writers_context
    from sogs_core.pipeline.streamed.processes import _run_part
    from sogs_core.settings import CompressSettings

    from .format_writers import splat_bytes

    start_early()
    path = tmp_path / "s.splat"
    path.write_bytes(splat_bytes(make_scene(3000, 0, seed=4)))
    monkeypatch.setenv("SOGS_MAX_SPLATS", "100")
    ctx = writers_context()
    inbox, out = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_run_part, args=(0, "cpu", CompressSettings(), [str(path)], 1, 0, inbox, out, None, 1,
                                               dict(os.environ)))
    proc.start()
    inbox.put(None)                       # no run for it: it only opens its input
    try:
        message = out.get(timeout=120)
    finally:
        proc.join(60)
    assert message[0] == "failed" and "3,000 splats" in str(message[2]), message
