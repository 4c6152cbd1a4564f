"""Quantizers: each bound follows from the step of its code."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sogs_core.quantize.codebook import kmeans_1d, nearest_index
from sogs_core.quantize.weights import splat_importance
from sogs_core.quantize.palette.kmeans import kmeans, palette_size
from sogs_core.formats.sog.codes import (decode_means, decode_opacity, decode_quats, encode_means, encode_opacity,
                                encode_quats)


def test_palette_size_rule():
    # min(64, 2^floor(log2(n / 1024))) * 1024, as splat-transform
    for n in (1, 100, 1000, 1024, 2047, 4097, 100_000, 1 << 20, 5_000_000):
        expect = int(min(64, 2 ** math.floor(math.log2(n / 1024))) * 1024)
        assert palette_size(n) == expect, n
        assert palette_size(n) <= n


def test_codebook_is_nearest_and_sorted():
    x = torch.from_numpy(np.random.default_rng(0).standard_t(3, size=(5000, 3)).astype(np.float32))
    cb, idx = kmeans_1d(x)
    assert cb.shape == (256,) and idx.dtype == torch.uint8 and idx.shape == x.shape
    assert torch.all(cb[1:] >= cb[:-1])
    err = (x - cb[idx.long()]).abs()
    best = (x.reshape(-1, 1) - cb[None]).abs().min(1).values.reshape(x.shape)
    assert torch.allclose(err, best, atol=1e-6)


def test_codebook_beats_uniform_grid():
    x = torch.from_numpy(np.random.default_rng(1).normal(-4, 1, 30000).astype(np.float32))
    cb, idx = kmeans_1d(x)
    mse_k = float(((x - cb[idx.long()]) ** 2).mean())
    grid = torch.linspace(float(x.min()), float(x.max()), 256)
    mse_u = float(((x - grid[nearest_index(x, grid)]) ** 2).mean())
    assert mse_k < 0.8 * mse_u


def test_codebook_exact_for_few_values():
    x = torch.tensor([0.5, -1.0, 0.5, 3.0, 3.0])
    cb, idx = kmeans_1d(x)
    assert torch.equal(cb[idx.long()], x)


def test_density_weighted_codebook_gives_the_tails_more_levels():
    # heavy-tailed values: weighting a bin of c values as c^0.25 moves levels into the tails,
    # so the largest values (the largest splats) are stored closer
    x = torch.from_numpy(np.random.default_rng(3).standard_t(3, size=60000).astype(np.float32))
    plain, pi = kmeans_1d(x, pin_ends=True)
    tail, ti = kmeans_1d(x, pin_ends=True, density_alpha=0.25)
    top = x >= torch.quantile(x, 0.999)
    err = lambda cb, i: (x - cb[i.long()]).abs()  # noqa: E731
    assert err(tail, ti)[top].max() < 0.5 * err(plain, pi)[top].max()
    assert tail[0] == x.min() and tail[-1] == x.max()
    best = (x.reshape(-1, 1) - tail[None]).abs().min(1).values
    assert torch.allclose(err(tail, ti), best, atol=1e-6)


def test_density_weighting_leaves_discrete_values_to_plain_kmeans():
    # a decoded 8-bit input holds at most a few hundred distinct values: fitted as without weights
    levels = np.random.default_rng(4).normal(-4, 1, 700).astype(np.float32)
    x = torch.from_numpy(np.random.default_rng(5).choice(levels, 50000))
    plain, pi = kmeans_1d(x, pin_ends=True)
    tail, ti = kmeans_1d(x, pin_ends=True, density_alpha=0.25)
    assert torch.equal(plain, tail) and torch.equal(pi, ti)


def test_importance_weighted_codebook_serves_the_splats_a_viewer_sees():
    # 50,000 faint specks around -5 and 300 large opaque splats spread over [-1, 0]: weighted by
    # importance (opacity x radius), the large ones' scales are stored far closer; every label is
    # still the nearest level, and decoded codes (few distinct values) are fitted as without it
    rng = np.random.default_rng(6)
    small = rng.normal(-5.0, 0.8, (50000, 3))
    large = rng.uniform(-1.0, 0.0, (300, 3))
    scales = torch.from_numpy(np.concatenate([small, large]).astype(np.float32))
    opacity = torch.from_numpy(np.concatenate([np.full(50000, -3.0), np.full(300, 4.0)]).astype(np.float32))
    weight = splat_importance(scales, opacity)[:, None].expand_as(scales)
    plain, pi = kmeans_1d(scales, pin_ends=True, density_alpha=0.25)
    seen, si = kmeans_1d(scales, pin_ends=True, density_alpha=0.25, importance=weight)
    err = lambda cb, i: (scales - cb[i.long()]).abs()[50000:]  # noqa: E731
    assert err(seen, si).mean() < 0.5 * err(plain, pi).mean()
    best = (scales.reshape(-1, 1) - seen[None]).abs().min(1).values.reshape(scales.shape)
    assert torch.allclose((scales - seen[si.long()]).abs(), best, atol=1e-6)
    levels = torch.from_numpy(np.random.default_rng(4).normal(-4, 1, 700).astype(np.float32))
    x = levels[torch.from_numpy(np.random.default_rng(5).integers(0, 700, (20000, 3)))]
    w = splat_importance(x, torch.zeros(20000))[:, None].expand_as(x)
    assert torch.equal(kmeans_1d(x, pin_ends=True, density_alpha=0.25, importance=w)[0],
                       kmeans_1d(x, pin_ends=True, density_alpha=0.25)[0])


def test_means_within_half_a_step():
    rng = np.random.default_rng(2)
    pos = rng.normal(0, 10, (4000, 3)).astype(np.float32)
    q, lo, hi = encode_means(torch.from_numpy(pos))
    back = decode_means(q.numpy(), lo, hi)
    t = np.sign(pos) * np.log1p(np.abs(pos))
    tb = np.sign(back) * np.log1p(np.abs(back))
    step = (np.asarray(hi) - np.asarray(lo)) / 65535
    assert (np.abs(t - tb) / step).max() <= 0.5 + 1e-3


def test_means_constant_axis():
    pos = np.zeros((10, 3), np.float32)
    pos[:, 0] = np.arange(10)
    q, lo, hi = encode_means(torch.from_numpy(pos))
    back = decode_means(q.numpy(), lo, hi)
    np.testing.assert_allclose(back[:, 1:], 0.0, atol=1e-7)


def test_quats_angle_bound():
    # each stored component has rounding error <= 0.5 / 255 * sqrt(2); three of them move the
    # unit quaternion by <= sqrt(3) * that, and the rotation angle is about twice the quaternion
    # distance: 2 * sqrt(3) * sqrt(2) * 0.5 / 255 rad = 0.55 degrees (plus the recomputed 4th)
    q = torch.randn(20000, 4)
    b = encode_quats(q).numpy()
    assert set(np.unique(b[:, 3])) <= {252, 253, 254, 255}
    d = decode_quats(b)
    qn = (q / q.norm(dim=1, keepdim=True)).numpy()
    ang = np.degrees(2 * np.arccos(np.clip(np.abs((qn * d).sum(1)), 0, 1)))
    assert ang.max() <= 1.0


def test_quats_invalid_tag_is_identity():
    d = decode_quats(np.array([[10, 20, 30, 7]], np.uint8))
    np.testing.assert_array_equal(d, [[1, 0, 0, 0]])


def test_decoders_give_the_same_floats_from_their_tables_as_from_their_formulas(monkeypatch):
    """Above DECODE_TABLE_MIN_ROWS the decoders evaluate each possible code once and gather: the
    floats must be the formulas' own, bit for bit (every code, a constant axis, and bad tags)."""
    from sogs_core.formats.sog import codes

    rng = np.random.default_rng(5)
    n = 70_000
    means = np.concatenate([np.arange(65536)[:, None].repeat(3, 1),
                            rng.integers(0, 65536, (n - 65536, 3))]).astype(np.int32)
    quats = rng.integers(0, 256, (n, 4), dtype=np.uint8)
    quats[:, 3] = rng.choice([250, 252, 253, 254, 255], n)
    opacity = rng.integers(0, 256, n, dtype=np.uint8)
    mins, maxs = [-3.5, 0.25, 1.0], [6.0, 2.0, 1.0]

    def decoded():
        return decode_means(means, mins, maxs), decode_quats(quats), decode_opacity(opacity)

    monkeypatch.setattr(codes, "DECODE_TABLE_MIN_ROWS", 1)
    tables = decoded()
    monkeypatch.setattr(codes, "DECODE_TABLE_MIN_ROWS", n + 1)
    formulas = decoded()
    for a, b in zip(tables, formulas):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    np.testing.assert_array_equal(tables[1][quats[:, 3] == 250], np.tile([1, 0, 0, 0], (int((quats[:, 3] == 250).sum()), 1)))


def test_opacity_bound():
    x = torch.linspace(-12, 12, 5001)
    a = encode_opacity(x).numpy()
    back = decode_opacity(a)
    sig = 1 / (1 + np.exp(-x.numpy().astype(np.float64)))
    assert np.abs(sig - 1 / (1 + np.exp(-back.astype(np.float64)))).max() <= 0.5 / 255 + 1e-6


def test_kmeans_uses_every_centroid_and_lowers_inertia():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3000, 9, generator=g)
    c1, l1, i1 = kmeans(x, 256, iterations=1, seed=0)
    c2, l2, i2 = kmeans(x, 256, iterations=8, seed=0)
    assert i2 < i1
    assert len(torch.unique(l2)) == 256
    d = torch.cdist(x, c2).argmin(1)
    assert torch.equal(d, l2)


def test_nearest_fn_methods_on_cpu():
    from sogs_core.quantize.palette.exact import assign
    from sogs_core.quantize.palette.kmeans import nearest_fn

    x = torch.randn(500, 9)
    c = torch.randn(40, 9)
    labels, dists = nearest_fn(x, "auto")(c)          # CPU: the torch search
    exact = ((x[:, None, :] - c[None]) ** 2).sum(-1)
    assert torch.equal(labels, exact.argmin(1))
    assert torch.allclose(dists, exact.min(1).values, atol=1e-4)
    assert torch.equal(assign(x, c)[0], labels)
    with pytest.raises(ValueError, match="CUDA"):
        nearest_fn(x, "triton")
    with pytest.raises(ValueError, match="unknown"):
        nearest_fn(x, "faiss")


def test_cell_search_is_close_to_the_exact_search():
    """The two-level CPU search (palette_ivf): exact distances for the labels it returns, most
    labels the exact ones, and 10 Lloyd steps within 0.5 % of the exact search's inertia."""
    from sogs_core.quantize.palette.exact import assign
    from sogs_core.quantize.palette.kmeans import nearest_fn, palette_size
    from sogs_core.quantize.palette.cells import CellSearch

    from .conftest import make_scene

    x = torch.from_numpy(make_scene(8000, 2, seed=4).f_rest)
    p = palette_size(len(x))
    assert isinstance(nearest_fn(x, "auto"), CellSearch)           # the CPU default
    cents = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(1))[:p]]
    labels, dists = CellSearch(x)(cents)
    exact_l, exact_d = assign(x, cents)
    assert torch.allclose(dists, ((x - cents[labels]) ** 2).sum(1), rtol=1e-4, atol=1e-6)
    assert float((labels == exact_l).float().mean()) > 0.95
    assert bool((dists >= exact_d - 1e-5).all())                   # never better than the nearest
    _, _, approx = kmeans(x, p, iterations=10, seed=0, method="cells")
    _, _, exact = kmeans(x, p, iterations=10, seed=0, method="torch")
    assert approx <= exact * 1.005


def test_palette_fitted_before_the_order_follows_it():
    """The compressor fits the SH palette on rows in input order while the order is chosen:
    attached with the order, splat i of the ordered scene gets the palette entry of row order[i]."""
    from sogs_core.formats.sog.codes import dequantize
    from sogs_core.quantize.palette.fit import fit_palette, with_palette
    from sogs_core.quantize.scene import quantize_splats

    rng = np.random.default_rng(3)
    n = 3000
    t = {k: torch.from_numpy(rng.normal(size=shape).astype(np.float32)) for k, shape in
         (("means", (n, 3)), ("quats", (n, 4)), ("log_scales", (n, 3)), ("f_dc", (n, 3)), ("opacity", (n,)),
          ("f_rest", (n, 24)))}
    pal = fit_palette(t["f_rest"], kmeans_iterations=2)
    assert pal is not None and pal.bands == 2 and len(pal.labels) == n
    assert fit_palette(t["f_rest"][:, :0]) is None
    order = rng.permutation(n)
    q = with_palette(quantize_splats(t["means"], t["quats"], t["log_scales"], t["f_dc"], t["opacity"]).take(order),
                     pal, order)
    assert np.array_equal(q.sh_labels, pal.labels[order])
    unordered = dequantize(with_palette(quantize_splats(t["means"], t["quats"], t["log_scales"], t["f_dc"],
                                                        t["opacity"]), pal))
    assert np.array_equal(dequantize(q).f_rest, unordered.f_rest[order])


def test_weighted_palette_serves_the_heavy_rows_and_counts_every_entry():
    """Weighted k-means: the rows of large weight get far closer centroids than unweighted,
    every centroid is the weighted mean of its rows, and the same seed gives the same fit."""
    rng = np.random.default_rng(8)
    x = torch.from_numpy(rng.normal(size=(6000, 9)).astype(np.float32))
    w = torch.from_numpy(np.where(np.arange(6000) < 300, 100.0, 0.01).astype(np.float32))
    plain_c, plain_l, _ = kmeans(x, 256, iterations=8, seed=1)
    seen_c, seen_l, inertia = kmeans(x, 256, iterations=8, seed=1, weights=w)
    err = lambda c, l: ((x - c[l]) ** 2).sum(1)[:300].mean()  # noqa: E731
    assert err(seen_c, seen_l) < 0.5 * err(plain_c, plain_l)
    again = kmeans(x, 256, iterations=8, seed=1, weights=w)
    assert torch.equal(again[0], seen_c) and torch.equal(again[1], seen_l)
    assert inertia == pytest.approx(float((((x - seen_c[seen_l]) ** 2).sum(1).double() * w.double()).sum()),
                                    rel=1e-4)


def test_palette_size_per_quality_level():
    from sogs_core.quantize.palette.kmeans import palette_size
    from sogs_core.quantize.quality import palette_size_for

    for n in (8192, 9000, 70000, 500):
        assert palette_size_for(n, 100) == palette_size(n)
        sizes = [palette_size_for(n, q) for q in (100, 90, 80, 70, 0)]
        assert sizes == sorted(sizes, reverse=True) and all(s <= n for s in sizes)
        assert all(s % 64 == 0 for s in sizes[1:]) or palette_size(n) <= 64
    assert palette_size_for(8192, 90) == 7360        # 90 % of 8192, in whole rows of 64


def test_codebook_levels_are_written_with_few_decimals_and_still_serve_the_nearest():
    from sogs_core.quantize.codebook import SHORT_DECIMAL_SHIFT, short_decimals

    torch.manual_seed(3)
    x = torch.randn(30000, dtype=torch.float64) * 1.7 - 4.0
    levels = np.sort(np.unique(np.round(np.random.default_rng(3).normal(-4, 1.7, 256), 9)))
    short = short_decimals(levels)
    gaps = np.diff(levels)
    near = np.minimum(np.r_[np.inf, gaps], np.r_[gaps, np.inf])
    assert np.all(np.abs(short - levels) <= SHORT_DECIMAL_SHIFT * np.minimum(near, np.median(gaps)) + 1e-12)
    assert short[0] == levels[0] and short[-1] == levels[-1]
    chars = lambda v: sum(len(str(np.float32(a))) for a in v)  # noqa: E731
    assert chars(short) < 0.75 * chars(levels)
    cb, idx = kmeans_1d(x.float(), pin_ends=True)
    assert torch.equal(idx.long(), nearest_index(x.float(), cb))
    assert chars(cb.numpy()[1:-1]) / 254 <= 7.5        # four decimals and a sign, where a float32 takes nine


def test_labels_from_the_fits_sort_are_the_nearest_levels():
    """`nearest_in_sorted` (the labels of an importance-weighted fit, from its own sort) gives
    `nearest_index`'s labels exactly: on ties, on values that sit on a boundary, on a codebook
    padded with repeats, and through a whole weighted fit."""
    from sogs_core.quantize.codebook import nearest_in_sorted

    g = torch.Generator().manual_seed(5)
    x = torch.randn(20000, generator=g)
    tied = torch.round(x * 20) / 20
    cases = [(x, torch.sort(torch.randn(256, generator=g)).values),
             (tied, torch.sort(torch.randn(256, generator=g)).values),
             (tied, tied[torch.randint(0, len(tied), (256,), generator=g)].sort().values),
             (x, torch.cat([torch.sort(torch.randn(200, generator=g)).values, torch.full((56,), 9.0)])),
             # halves on the boundaries of whole levels: a tie goes to the lower level
             (torch.randint(-2, 514, (20000,), generator=g).float() / 2, torch.arange(256).float())]
    for values, cb in cases:
        srt, perm = torch.sort(values.double())
        assert torch.equal(nearest_in_sorted(srt, perm, cb), nearest_index(values, cb))
    cb, idx = kmeans_1d(x.reshape(-1, 4), pin_ends=True, density_alpha=0.5, importance=torch.rand(5000, 4, generator=g))
    assert idx.shape == (5000, 4)
    assert torch.equal(idx.reshape(-1).long(), nearest_index(x, cb))


def test_packed_sort_orders_floats_as_torch_and_keeps_ties_in_index_order():
    """`sort_with_order` (the codebook fits' sort on a CPU: value and index packed in one
    integer) gives torch.sort's values exactly and a permutation that sorts them, with equal
    values in index order: negatives, both zeros, ties, extremes, infinities; float64 values
    and a single value take torch.sort and agree too."""
    from sogs_core.model.sorting import sort_with_order

    g = torch.Generator().manual_seed(7)
    x = torch.randn(30000, generator=g) * 10
    ties = torch.round(x) / 4
    special = torch.tensor([0.0, -0.0, 1e-45, -1e-45, 3.4e38, -3.4e38, float("inf"), float("-inf"), 0.0, -0.0])
    for values in (x, ties, torch.cat([ties, special]), x[:1], x.reshape(100, 300), x.double()):
        srt, perm = sort_with_order(values)
        flat = values.reshape(-1)
        assert srt.dtype == torch.float64 and perm.dtype == torch.int64
        assert torch.equal(srt, torch.sort(flat.double()).values)
        assert torch.equal(flat.double()[perm], srt)
        assert torch.equal(torch.sort(perm).values, torch.arange(len(flat)))
        if values.dtype == torch.float32:          # the packed path: equal floats keep index order
            bits = srt.float().view(torch.int32)   # (-0.0 sorts just below +0.0)
            same = bits[1:] == bits[:-1]
            assert bool((perm[1:][same] > perm[:-1][same]).all())
    assert bool((torch.diff(sort_with_order(ties)[0]) == 0).any())     # the ties case has ties
