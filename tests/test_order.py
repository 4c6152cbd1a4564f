"""The order stage: every method is a permutation, round-trips within the core bounds, and is
deterministic; the curves are the curves; the chain lowers its own cost; the palette numbering
changes no decoded value; the sampled choice picks the smaller candidate.

Bounds as in test_roundtrip (from the quantization): positions within one 16-bit step, rotation
<= 1.5 degrees, opacity within half a byte after the sigmoid; an order changes none of them.
"""
from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

from sogs_core.model.splats import ATTRIBUTES
from sogs_core.pipeline.compressor import Compressor

from sogs_core.settings import CompressSettings
from sogs_core.pipeline.fidelity import fidelity
from sogs_core.order import order_scene
from sogs_core.settings import ORDER_METHODS
from sogs_core.order.chain import bit_cost, byte_columns, greedy_chain
from sogs_core.settings import ChainConfig
from sogs_core.pipeline.choose_order import smallest_by_sample
from sogs_core.order.curves import Y_TOP, curve_order, hilbert_keys, morton_keys, position_codes
from sogs_core.quantize.palette.numbering import apply_order, palette_numbering, renumber
from sogs_core.formats.ply.write import ply_bytes
from sogs_core.formats.sog.codes import dequantize
from sogs_core.quantize.scene import quantize_scene
from sogs_core.formats.sog.layout import build_images, grid_shape, sample_rows
from sogs_core.formats.sog.read import read_sog_bytes
from sogs_core.webp.codec import encode_all, encode_webp
from sogs_core.settings import WebpSettings

from .conftest import FAST_PLAS, make_scene



def _quantized(n: int, sh: int, seed: int = 1):
    scene = make_scene(n, sh, seed=seed)
    tens = {k: torch.from_numpy(getattr(scene, k)) for k in ATTRIBUTES}
    return scene, tens, quantize_scene(*(tens[k] for k in ATTRIBUTES), kmeans_iterations=2)


@pytest.mark.parametrize("method", ORDER_METHODS)
@pytest.mark.parametrize("n", [1, 3, 1001, 5003])
def test_every_order_is_a_permutation(method, n):
    """No splat lost or duplicated, for counts that are not multiples of the image width."""
    _, tens, q = _quantized(n, 1 if n > 100 else 0)
    order, info = order_scene(q, tens, method, plas=FAST_PLAS, choose=None)
    qo = apply_order(q, order)
    assert sorted(order.tolist()) == list(range(n))
    assert qo.count == n and info["order"] == method
    np.testing.assert_array_equal(qo.quats_b, q.quats_b[order])
    np.testing.assert_array_equal(qo.means_q, q.means_q[order])


@pytest.mark.parametrize("method", ["chain", "morton", "hilbert", "plas"])
def test_each_order_round_trips_within_bounds(method):
    scene = make_scene(3001, 2, seed=5)
    with Compressor(device="cpu", settings=CompressSettings(order=method, plas=FAST_PLAS), warm=False) as c:
        res = c.compress(ply_bytes(scene))
    dec = read_sog_bytes(res.package.bundle_bytes())
    rep = fidelity(scene, dec)
    assert rep["unmatched"] == 0
    assert rep["position_max_steps"] <= 1.0
    assert rep["rotation_max_deg"] <= 1.5
    assert rep["opacity_max_error"] <= 0.5 / 255 + 1e-6


def test_default_order_same_seed_same_bytes():
    data = ply_bytes(make_scene(4097, 1, seed=9))
    outs = []
    for _ in range(2):
        with Compressor(device="cpu", settings=CompressSettings(seed=3), warm=False) as c:
            outs.append(c.compress(data).package.bundle_bytes())
    assert outs[0] == outs[1]


def test_morton_keys_interleave_bits():
    codes = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [3, 0, 0], [(1 << 21) - 1] * 3])
    assert morton_keys(codes).tolist() == [1, 2, 4, 9, (1 << 63) - 1]
    assert morton_keys(codes, Y_TOP).tolist() == [2, 4, 1, 18, (1 << 63) - 1]   # y highest, z lowest


def test_hilbert_curve_visits_every_cell_through_neighbours():
    g = torch.stack(torch.meshgrid(*[torch.arange(8)] * 3, indexing="ij"), -1).reshape(-1, 3)
    keys = hilbert_keys(g, bits=3)
    assert sorted(keys.tolist()) == list(range(512))            # a bijection of the 8^3 cells
    path = g[torch.argsort(keys)]
    assert int((path[1:] - path[:-1]).abs().sum(1).max()) == 1  # each step to a face neighbour


def test_position_codes_use_the_full_range():
    means = torch.tensor([[-5.0, 0.0, 1.0], [5.0, 2.0, 1.0], [0.0, 1.0, 1.0]])
    codes = position_codes(means)
    assert codes[:, 0].tolist() == [0, (1 << 21) - 1, (1 << 20)]
    assert codes[:, 2].tolist() == [0, 0, 0]                    # a flat axis maps to 0


def _chain_cost(seq: torch.Tensor, cols: np.ndarray, w: np.ndarray) -> float:
    """The walk's objective along `seq`: `bit_cost` (Mitchell's log2(1 + d)) of each byte
    difference, weighted, in float64 so that equal costs compare equal."""
    x = torch.from_numpy(cols)[seq].to(torch.int16)
    d = (x[1:] - x[:-1]).abs().float()
    return float((bit_cost(d).double() @ torch.from_numpy(w).double()).sum())


def test_greedy_chain_permutes_inside_chunks_and_lowers_its_cost():
    _, tens, q = _quantized(5003, 0)
    seq = curve_order(tens["means"], "hilbert")
    cols, w = byte_columns(q, 3.0)
    out = greedy_chain(seq, torch.from_numpy(cols), torch.from_numpy(w), 64)
    m = len(seq) // 64 * 64
    for a in range(0, m, 64):                                   # each chunk keeps its members ...
        assert sorted(out[a:a + 64].tolist()) == sorted(seq[a:a + 64].tolist())
        assert out[a] == seq[a]                                 # ... and its first splat
    assert torch.equal(out[m:], seq[m:])                        # the tail keeps its order
    assert _chain_cost(out, cols, w) < 0.95 * _chain_cost(seq, cols, w)


def _greedy_reference(cols: np.ndarray, w: np.ndarray, seq: list[int]) -> list[int]:
    """One chunk walked the slow, obvious way: from the first splat, always to the unvisited one
    of lowest cost (the first in chunk order on ties)."""
    path, left = [seq[0]], list(seq[1:])
    while left:
        costs = [_chain_cost(torch.tensor([path[-1], s]), cols, w) for s in left]
        path.append(left.pop(int(np.argmin(costs))))
    return path


@pytest.mark.parametrize("weights", [[3, 1, 1, 1, 1], [2.5, 1, 1, 1, 1], [3, 1, 0, 1, 1], [3, 1, 3, 1, 1]])
def test_greedy_chain_is_the_greedy_walk_with_its_ties(weights):
    """The batched walk (compacted every few steps, integer bit sums) takes the same path as
    the plain walk, ties included: few distinct byte values make many equal costs. Integer
    weights sum in int32, others (2.5) in float64; weights of 0 and non-adjacent heavy channels
    too."""
    rng = np.random.default_rng(3)
    cols = rng.integers(0, 4, (2 * 37 + 5, 5)).astype(np.uint8) * 85       # 0, 85, 170, 255
    w = np.array(weights, np.float32)
    seq = torch.from_numpy(rng.permutation(len(cols)))
    out = greedy_chain(seq, torch.from_numpy(cols), torch.from_numpy(w), 37, method="torch").tolist()
    s = seq.tolist()
    want = _greedy_reference(cols, w, s[:37]) + _greedy_reference(cols, w, s[37:74]) + s[74:]
    assert out == want


@pytest.mark.parametrize("n", [1_000_000, 8_388_608, 90_854])
def test_sample_bands_are_whole_rows_two_or_more_deep(n):
    idx, w = sample_rows(n, 64, 32768, min_rows=2)
    assert w == grid_shape(n)[1] and len(idx) % w == 0 and idx.max() < n
    rows = np.unique(idx // w)
    assert np.array_equal(np.unique(idx), idx)                      # no texel twice, in order
    starts = rows[np.r_[True, np.diff(rows) > 1]]
    assert len(starts) == 64 and all(r + 1 in rows for r in starts)  # 64 bands, each >= 2 rows
    small_idx, _ = sample_rows(20_000, 64, 32768, min_rows=2)
    assert np.array_equal(small_idx, np.arange(20_000))              # small images: all of it


@pytest.mark.parametrize("n", [511, 512, 8192, 90_854, 307_128, 1_000_000])
def test_rows_of_the_chained_order_start_its_chunks(n):
    """With the chunk as row alignment the width is a multiple of it and no narrower than
    splat-transform's (so H stays within the square's); a scene smaller than one chunk keeps the
    square."""
    h0, w0 = grid_shape(n)
    h, w = grid_shape(n, 512)
    assert h * w >= n and (h - 1) * w < n
    if n < 512:
        assert (h, w) == (h0, w0)
    else:
        assert w % 512 == 0 and w0 <= w < w0 + 512 and h <= h0


def test_a_chained_scene_is_written_a_chunk_a_row_with_the_same_values():
    """Each chunk size gives its own width, and every splat decodes to the same values (a
    multiset: the orders differ) as under the square layout of a plain curve."""
    scene = make_scene(3000, 1, seed=4)
    rows = {}
    for key, settings in {64: CompressSettings(chain=ChainConfig(chunk=64, choose=False)),
                          100: CompressSettings(chain=ChainConfig(chunk=100, choose=False)),
                          "morton": CompressSettings(order="morton")}.items():
        pkg, _ = Compressor(device="cpu", settings=settings).encode(scene, with_fidelity=False)
        width = Image.open(io.BytesIO(pkg.files["means_l.webp"])).size[0]
        assert width == (grid_shape(3000)[1] if key == "morton" else -(-grid_shape(3000)[1] // key) * key)
        d = read_sog_bytes(pkg.bundle_bytes(), "x.sog")
        assert d.count == 3000
        flat = np.concatenate([d.means, d.quats, d.log_scales, d.f_dc, d.opacity[:, None], d.f_rest.reshape(3000, -1)], 1)
        rows[key] = flat[np.lexsort(flat.T[::-1])]
    np.testing.assert_array_equal(rows[64], rows["morton"])
    np.testing.assert_array_equal(rows[100], rows["morton"])


def test_palette_numbering_is_a_bijection_and_changes_no_value():
    _, tens, q = _quantized(5003, 2)
    order = curve_order(tens["means"], "morton").numpy()
    labels = q.sh_labels[order]
    new = palette_numbering(labels, q.sh_palette_count, block=64)
    assert sorted(new.tolist()) == list(range(q.sh_palette_count))
    uses = np.bincount(labels, minlength=q.sh_palette_count)
    assert uses[new < 64].min() >= uses[new >= 64].max()        # the most used entries in block 0
    first = {int(e): i for i, e in reversed(list(enumerate(labels)))}
    in_block0 = sorted((e for e in range(q.sh_palette_count) if new[e] < 64), key=lambda e: new[e])
    assert [first.get(e, len(labels)) for e in in_block0] == sorted(first.get(e, len(labels)) for e in in_block0)
    qo = q.take(order)
    a, b = dequantize(qo), dequantize(renumber(qo, new))
    np.testing.assert_array_equal(a.f_rest, b.f_rest)
    assert not np.array_equal(qo.sh_labels, renumber(qo, new).sh_labels)


def test_sampled_choice_picks_the_smaller_order():
    _, tens, q = _quantized(20000, 1)
    curve = curve_order(tens["means"], "morton").numpy()
    shuffled = np.random.default_rng(0).permutation(q.count)
    with ThreadPoolExecutor(2) as pool:
        enc = lambda imgs, chained=(): encode_all(imgs, pool, chained=chained)  # noqa: E731
        assert smallest_by_sample(q, [shuffled, curve], enc) == 1
        assert smallest_by_sample(q, [curve, shuffled], enc, chained=[True, False]) == 0
        # and the choice agrees with the full encode
        full = [sum(len(b) for b in enc(build_images(apply_order(q, o))[0]).values()) for o in (shuffled, curve)]
    assert full[1] < full[0]


def test_the_choice_compares_candidates_of_other_widths_per_texel():
    """A chained candidate sampled at a chunk-aligned width covers more texels than a square
    one; the better order must still win (a sum of bytes preferred the narrower sample)."""
    _, tens, q = _quantized(200_000, 0)
    curve = curve_order(tens["means"], "morton").numpy()
    rng = np.random.default_rng(0)
    worse = curve.copy()
    i = rng.choice(len(worse), 20_000, replace=False)
    worse[i] = worse[rng.permutation(i)]                         # 10 % of the splats moved away
    assert sample_rows(q.count, 64, 32768, 2, 1024)[0].size > 2 * sample_rows(q.count, 64, 32768, 2)[0].size
    with ThreadPoolExecutor(2) as pool:
        enc = lambda imgs, chained=(): encode_all(imgs, pool, chained=chained)  # noqa: E731
        assert smallest_by_sample(q, [curve, worse], enc, chained=[True, False], row_align=1024) == 0


def test_chain_without_choice_has_one_candidate():
    _, tens, q = _quantized(3000, 0)
    _, info = order_scene(q, tens, "chain", chain=ChainConfig(choose=False),
                             choose=lambda *_: pytest.fail("no choice with one candidate"))
    assert info["candidates"] == 1 and info["chosen"] == 0


def test_settings_hash_follows_the_order_that_is_used():
    base = CompressSettings()
    assert CompressSettings(plas=FAST_PLAS).digest() == base.digest()       # PLAS unused by chain
    assert CompressSettings(order="morton").digest() != base.digest()
    assert CompressSettings(chain=ChainConfig(chunk=64)).digest() != base.digest()
    assert (CompressSettings(order="plas", plas=FAST_PLAS).digest()
            != CompressSettings(order="plas").digest())
    with pytest.raises(ValueError, match="unknown order"):
        CompressSettings(order="zorder")


def test_cli_and_backfill_offer_every_order():
    """One definition of the order methods: both parsers offer exactly settings.ORDER_METHODS."""
    from ray_jobs.backfill import build_parser as backfill_parser
    from sogs_cli.main import build_parser

    compress = build_parser()._subparsers._group_actions[0].choices["compress"]
    for parser in (compress, backfill_parser()):
        order = next(a for a in parser._actions if "--order" in a.option_strings)
        assert tuple(order.choices) == ORDER_METHODS


@pytest.mark.parametrize("n,sh", [(1, 3), (2, 0), (3, 1), (5, 2), (17, 3)])
@pytest.mark.parametrize("method", ["chain", "plas", "morton"])
def test_tiny_scenes_compress_with_every_order(n, sh, method):
    """Scenes narrower than one image row: the sampled choice then encodes the whole (partial)
    row; nothing may fail, and every splat comes back within the bounds."""
    scene = make_scene(n, sh, seed=n)
    with Compressor(device="cpu", settings=CompressSettings(order=method, plas=FAST_PLAS), warm=False) as c:
        res = c.compress(ply_bytes(scene))
    dec = read_sog_bytes(res.package.bundle_bytes())
    assert dec.count == n and dec.sh_degree == sh
    assert res.fidelity["position_max_steps"] <= 1.0 and res.fidelity["unmatched"] == 0


def test_sampled_choice_on_a_partial_row():
    _, tens, q = _quantized(3, 0)
    with ThreadPoolExecutor(2) as pool:
        pick = smallest_by_sample(q, [np.arange(3), np.array([2, 0, 1])], lambda imgs, keys: encode_all(imgs, pool, chained=keys))
    assert pick in (0, 1)


def test_chained_order_gets_its_own_webp_effort():
    """means_u along the chained order is encoded with the chained override (quality 25, where
    more effort wrote 3-5 % more on the real scenes); every other image, and means_u along a
    curve, keep the per-image settings; encode_all applies it by key."""
    st = WebpSettings()
    chained = st.for_order(True)
    assert st.for_order(False) is st
    assert chained.quality_for("means_u.webp") == 25 and st.quality_for("means_u.webp") == 50
    for name in ("means_l.webp", "quats.webp", "scales.webp", "sh0.webp", "shN_labels.webp", "shN_centroids.webp"):
        assert chained.quality_for(name) == st.quality_for(name)
    _, tens, q = _quantized(20000, 0)
    order, info = order_scene(q, tens, "chain")
    qo = apply_order(q, order)
    assert info["chained"] and info["chosen"] == 0            # no chooser: the chained candidate
    img = build_images(qo)[0]["means_u.webp"]
    with ThreadPoolExecutor(2) as pool:
        files = encode_all({"0:means_u.webp": img, "1:means_u.webp": img}, pool, st, chained={"0:means_u.webp"})
    assert files["0:means_u.webp"] == encode_webp(img, chained, "means_u.webp")
    assert files["1:means_u.webp"] == encode_webp(img, st, "means_u.webp")
    assert files["0:means_u.webp"] != files["1:means_u.webp"]     # the two efforts differ on this image


def _lattice_scene(seed: int = 1):
    """A structured-position scene (a generator's lattice, as DreamGaussian-style objects have):
    splats on a 1/32 grid in a spherical shell, written in lattice order."""
    from sogs_core.model.splats import Splats

    rng = np.random.default_rng(seed)
    g = np.arange(-1, 1, 1 / 32)
    pts = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    shell = pts[np.abs(np.linalg.norm(pts, axis=1) - 0.8) < 0.03].astype(np.float32)
    n = len(shell)
    quats = np.tile(np.float32([1, 0, 0, 0]), (n, 1)) + rng.normal(0, 0.05, (n, 4)).astype(np.float32)
    return Splats(shell, quats, (-4.0 + rng.normal(0, 0.2, (n, 3))).astype(np.float32),
                  rng.normal(0, 0.5, (n, 3)).astype(np.float32), rng.normal(2, 1, n).astype(np.float32),
                  np.zeros((n, 0), np.float32))


def test_structured_positions_never_larger_than_morton_or_the_input_order():
    """The default order tries the input order where it is as local as a curve: on a lattice
    scene it is then no larger than Morton, Hilbert or the input order itself; on a shuffled
    copy (a trained scene's order) the input order is not even tried."""
    from sogs_core.order.chain import input_is_local
    from sogs_core.formats.sog.codes import encode_means

    scene = _lattice_scene()
    data = ply_bytes(scene)
    size = {order: len(Compressor(device="cpu", settings=CompressSettings(order=order)).compress(
        data, name="s.ply", with_fidelity=False).package.bundle_bytes()) for order in ("chain", "morton", "hilbert", "input")}
    assert size["chain"] <= min(size["morton"], size["hilbert"], size["input"])
    q, _, _ = encode_means(torch.from_numpy(scene.means))
    morton = curve_order(torch.from_numpy(scene.means), "morton", axes=Y_TOP).numpy()
    assert input_is_local(q.numpy(), morton)
    perm = np.random.default_rng(2).permutation(len(q))
    shuffled_morton = curve_order(torch.from_numpy(scene.means[perm]), "morton", axes=Y_TOP).numpy()
    assert not input_is_local(q.numpy()[perm], shuffled_morton)


def test_bit_cost_is_mitchells_log2():
    v = torch.arange(0, 256, dtype=torch.float32)
    got, exact = bit_cost(v), torch.log2(1 + v)
    assert torch.equal(bit_cost(torch.tensor([0.0, 1.0, 3.0, 127.0, 255.0])), torch.tensor([0.0, 1.0, 2.0, 7.0, 8.0]))
    assert bool((got <= exact + 1e-6).all()) and float((exact - got).max()) < 0.087
    assert bool((got[1:] > got[:-1]).all())                   # increasing: a nearer byte always costs less


def test_images_started_ahead_of_the_choice_are_the_chosen_orders_or_dropped(monkeypatch):
    """The chained order's images, started while the order is chosen (`images_ahead`), give the
    same file as images started after the choice, both where the chained order wins (taken) and
    where another candidate wins (a lattice: dropped); a SH scene's palette image included."""
    from sogs_core.pipeline import images_ahead

    seen = []
    real = images_ahead.ImagesAhead.taken
    monkeypatch.setattr(images_ahead.ImagesAhead, "taken",
                        lambda self, chosen: seen.append((self.index, chosen, real(self, chosen))) or seen[-1][2])
    for data in (ply_bytes(make_scene(6000, 2, seed=4)), ply_bytes(_lattice_scene())):
        files = [Compressor(device="cpu", settings=CompressSettings(), images_ahead=ahead, warm=False).compress(
            data, name="s.ply", with_fidelity=False).package.bundle_bytes() for ahead in (True, False)]
        assert files[0] == files[1]
    assert [s[2] for s in seen] == [True, False]         # taken on the first scene, dropped on the lattice
    assert seen[0][:2] == (0, 0) and seen[1][0] == 0 and seen[1][1] != 0


def _hilbert_keys_reference(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """The keys every faster form must give, bit for bit: Skilling's transpose form
    (`curves._hilbert_keys_transpose`, the definition the tables are read off), itself pinned
    by `test_the_hilbert_curve_is_the_one_files_were_ordered_by`."""
    from sogs_core.order import curves

    return curves._hilbert_keys_transpose(codes, bits)


def test_the_hilbert_curve_is_the_one_files_were_ordered_by():
    """Known keys (computed by the transpose form before the tables existed): a change to the
    definition would reorder every file, so it fails here rather than passing by comparison
    with itself."""
    codes = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [2097151, 2097151, 2097151],
                          [123456, 654321, 1048576], [2097151, 0, 1]])
    want = [0, 1, 7, 3, 6588122883467697005, 2240218738068067473, 9223372036854775804]
    assert _hilbert_keys_reference(codes, 21).tolist() == want
    assert hilbert_keys(codes, 21).tolist() == want
    cube = torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [1, 1, 1], [1, 0, 1], [0, 0, 1]])
    assert hilbert_keys(cube, 1).tolist() == [0, 7, 4, 3, 2, 5, 6, 1]


def _structured_codes(bits: int) -> torch.Tensor:
    """Codes where bit tricks go wrong: the grid's corners, equal coordinates, powers of two and
    one less along each axis and all three, the largest values next to zeros."""
    top = (1 << bits) - 1
    edge = sorted({0, 1, top, top - 1, top >> 1, (top >> 1) + 1} & set(range(top + 1)))
    rows = [[a, b, c] for a in edge for b in edge for c in edge]
    for p in range(bits):
        for v in (1 << p, (1 << p) - 1, top ^ (1 << p)):
            rows += [[v, v, v], [v, 0, 0], [0, v, 0], [0, 0, v], [v, top, 0], [top, v, top]]
    rows += [[v, v, v] for v in torch.randint(0, top + 1, (500,), generator=torch.Generator().manual_seed(bits)).tolist()]
    return torch.tensor(rows)


@pytest.mark.parametrize("bits", [1, 2, 3, 7, 10, 20, 21])
def test_hilbert_tables_give_the_transpose_keys(bits, monkeypatch):
    """The table walk (`_hilbert_keys_torch`) gives the transpose form's keys for every code
    tried: corners, structured codes, random codes (200,000 at the full 21 bits), in passes of
    any length and from a non-contiguous tensor; `hilbert_keys` on a CPU is the same walk."""
    from sogs_core.order import curves

    top = (1 << bits) - 1
    gen = torch.Generator().manual_seed(100 + bits)
    corners = torch.tensor([[a, b, c] for a in (0, top) for b in (0, top) for c in (0, top)])
    codes = torch.cat([corners, _structured_codes(bits),
                       torch.randint(0, top + 1, (200_000 if bits == 21 else 20_000, 3), generator=gen)])
    want = _hilbert_keys_reference(codes, bits)
    assert torch.equal(curves._hilbert_keys_torch(corners, bits), want[:8])
    assert torch.equal(curves._hilbert_keys_torch(codes, bits), want)
    assert torch.equal(hilbert_keys(codes, bits), want)
    assert torch.equal(curves._hilbert_keys_torch(codes.T.contiguous().T, bits), want)
    monkeypatch.setattr(curves, "_BLOCK", 999)                   # many passes, the last one short
    assert torch.equal(curves._hilbert_keys_torch(codes, bits), want)


def test_hilbert_tables_give_the_transpose_keys_on_every_small_grid():
    """Every cell of every grid up to 16 cells a side, and an empty input."""
    from sogs_core.order import curves

    for bits in range(0, 5):
        g = torch.arange(1 << bits)
        cells = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
        assert torch.equal(curves._hilbert_keys_torch(cells, bits), _hilbert_keys_reference(cells, bits))
    assert curves._hilbert_keys_torch(torch.zeros(0, 3, dtype=torch.long), 21).tolist() == []
