"""Our VP8L encoder: libwebp's decoder (Pillow) must give back every texel, over awkward shapes,
contents and settings; the prefix codes must be valid; the bytes must stay close to libwebp's."""
from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from sogs_core.model.splats import ATTRIBUTES
from sogs_core.pipeline.compressor import Compressor

from sogs_core.settings import CompressSettings
from sogs_core.webp.vp8l import encode_lossless
from sogs_core.settings import Vp8lSettings
from sogs_core.webp.vp8l_bits import BitStream
from sogs_core.webp.vp8l_prefix import _length_tokens, canonical_codes, code_lengths, emitted_widths, prefix_split
from sogs_core.formats.sog.read import read_sog
from sogs_core.settings import WebpSettings

from .conftest import make_scene


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def _images(rng: np.random.Generator, h: int, w: int) -> dict[str, np.ndarray]:
    noise = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    smooth = np.cumsum(rng.integers(0, 3, (h, w, 4)), 1).astype(np.uint8)
    smooth[..., 3] = 255
    padded = smooth.copy()                     # a SOG image: opaque texels, zeros after the last splat
    padded.reshape(-1, 4)[(h * w) * 2 // 3:] = 0
    few = rng.integers(0, 3, (h, w, 4), dtype=np.uint8) * 85
    return {"noise": noise, "smooth": smooth, "padded": padded, "few": few, "zeros": np.zeros((h, w, 4), np.uint8)}


SETTINGS = {
    "default": Vp8lSettings(),
    "small cache": Vp8lSettings(cache_bits=(1,)),
    "cache 4": Vp8lSettings(cache_bits=(4,)),
    "no copies, one group": Vp8lSettings(copies=False, max_groups=1),
    "tiny tiles": Vp8lSettings(predictor_bits=2, group_bits=2, max_groups=64),
    "big tiles": Vp8lSettings(predictor_bits=6, group_bits=9),
    "no predictor": Vp8lSettings(predictor=False, max_groups=16),
}


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (9, 1), (33, 65), (64, 64)])
@pytest.mark.parametrize("label", list(SETTINGS))
def test_libwebp_decodes_every_texel(shape, label):
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    for kind, img in _images(rng, *shape).items():
        data = encode_lossless(img, settings=SETTINGS[label])
        assert data[:4] == b"RIFF" and data[8:16] == b"WEBPVP8L"
        np.testing.assert_array_equal(_decode(data), img, err_msg=f"{kind} {shape} {label}")


def test_long_runs_are_split_at_the_copy_limit():
    img = np.zeros((70, 128, 4), np.uint8)     # one run of 8960 equal texels, more than 4096
    img[0, 0] = (1, 2, 3, 4)
    np.testing.assert_array_equal(_decode(encode_lossless(img)), img)


def test_bad_images_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        encode_lossless(np.zeros((4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="H, W, 4"):
        encode_lossless(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="16384"):
        encode_lossless(np.zeros((1, 16385, 4), np.uint8))


def test_code_lengths_are_complete_and_limited():
    fib = [1, 1]
    while len(fib) < 40:
        fib.append(fib[-1] + fib[-2])           # unlimited Huffman would go 39 deep
    for counts in (np.array(fib, float), np.random.default_rng(1).integers(0, 1000, 300).astype(float),
                   np.array([5.0, 0, 0, 7])):
        lengths = code_lengths(counts)
        used = lengths > 0
        assert used.tolist() == (counts > 0).tolist()
        assert lengths.max() <= 15
        assert np.sum(2.0 ** -lengths[used]) == pytest.approx(1.0)      # a complete code
        codes = canonical_codes(lengths)
        words = {format(int(c), f"0{int(n)}b")[::-1] for c, n in zip(codes[used], lengths[used])}
        assert len(words) == used.sum()
        assert not any(a != b and b.startswith(a) for a in words for b in words)   # prefix-free
    assert emitted_widths(code_lengths(np.array([0.0, 3.0]))).tolist() == [0, 0]  # one symbol: no bits


def _huffman_cost(counts: np.ndarray) -> float:
    """The optimal (unlimited) prefix code's total bits: the sum of all merges' weights."""
    import heapq
    heap = [float(c) for c in counts if c > 0]
    heapq.heapify(heap)
    total = 0.0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        total += merged
        heapq.heappush(heap, merged)
    return total


def test_code_lengths_are_optimal_when_the_limit_does_not_bind():
    rng = np.random.default_rng(4)
    for counts in (rng.integers(1000, 5000, 1304).astype(float), np.full(256, 7.0),    # ties everywhere
                   np.geomspace(1, 1000, 40).round(), rng.integers(0, 3, 280).astype(float)):
        lengths = code_lengths(counts)
        assert lengths.max() <= 15
        assert float((lengths * counts).sum()) == pytest.approx(_huffman_cost(counts))


def _expand_length_tokens(token, extra) -> list[int]:
    """The decoder's reading of code-length tokens (WebP lossless spec, 6.2.5)."""
    out, previous = [], 8
    for t, x in zip(token.tolist(), extra.tolist()):
        if t < 16:
            out.append(t)
            previous = t if t else previous
        elif t == 16:
            out += [previous] * (3 + x)
        else:
            out += [0] * ((3 if t == 17 else 11) + x)
    return out


def test_length_tokens_read_back_to_the_lengths():
    rng = np.random.default_rng(6)
    cases = [np.zeros(300, np.int64), np.full(300, 9), np.array([0, 0, 5, 5, 5, 5, 5, 5, 5, 5, 0, 3])]
    for _ in range(20):                      # runs of every length class, zeros and not
        runs = rng.integers(1, 160, 12)
        values = rng.choice([0, 0, 3, 7, 15], 12)
        cases.append(np.repeat(values, runs))
    for lengths in cases:
        token, extra, width = _length_tokens(lengths)
        assert _expand_length_tokens(token, extra) == lengths.tolist()
        assert (extra < (1 << width)).all() and (extra >= 0).all()
        assert width.tolist() == [{16: 2, 17: 3, 18: 7}.get(t, 0) for t in token.tolist()]


def test_prefix_split_inverts_the_decoders_rule():
    values = torch.arange(1, 70000)
    code, width, extra = prefix_split(values)
    for v, c, x in zip(values.tolist()[::97], code.tolist()[::97], extra.tolist()[::97]):
        if c < 4:
            assert v == c + 1
        else:
            bits = (c - 2) >> 1
            assert v == ((2 + (c & 1)) << bits) + x + 1
    assert int(width.max()) <= 15


def test_bit_stream_packs_lsb_first_and_ignores_zero_width_fields():
    bits = BitStream()
    bits.put(0b101, 3)
    bits.put_fields(torch.tensor([7, 0b11]), torch.tensor([0, 2]))    # the 7 has no room: nothing
    bits.put(0xABC, 12)
    bits.put_host(np.array([[1, 9], [0, 2]]), np.array([[1, 4], [0, 2]]))   # host fields, row-major
    bits.put(1, 1)
    expected = 0b101 | 0b11 << 3 | 0xABC << 5 | 1 << 17 | 9 << 18 | 2 << 22 | 1 << 24
    assert bits.to_bytes() == expected.to_bytes(4, "little")                             # 25 bits
    with pytest.raises(ValueError):
        bits.put(4, 2)


@pytest.fixture(scope="module")
def both_encoders(tmp_path_factory):
    d = tmp_path_factory.mktemp("vp8l")
    from sogs_core.formats.ply.write import write_ply
    write_ply(d / "in.ply", make_scene(20000, 3, seed=5))
    sizes = {}
    for encoder in ("libwebp", "own"):
        settings = replace(CompressSettings(), webp=replace(WebpSettings(), encoder=encoder))
        with Compressor(device="cpu", settings=settings, warm=False) as c:
            res = c.compress(str(d / "in.ply"), str(d / f"{encoder}.sog"))
        sizes[encoder] = {k: len(v) for k, v in res.package.files.items()}
    return d, sizes


def test_own_encoder_writes_the_same_scene(both_encoders):
    d, _ = both_encoders
    a, b = read_sog(str(d / "libwebp.sog")), read_sog(str(d / "own.sog"))
    for attr in ATTRIBUTES:
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr), err_msg=attr)


def test_own_encoder_bytes_stay_near_libwebp(both_encoders):
    _, sizes = both_encoders
    images = [k for k in sizes["own"] if k.endswith(".webp")]
    own, lib = sum(sizes["own"][k] for k in images), sum(sizes["libwebp"][k] for k in images)
    assert own <= 1.03 * lib, (own, lib)


def test_reference_reads_what_our_encoder_writes(both_encoders):
    from sogs_core.formats.ply.read import read_ply

    from . import splat_transform
    from .test_conformance import assert_same_splats

    d, _ = both_encoders
    splat_transform.run(str(d / "own.sog"), str(d / "own_decoded.ply"))
    assert_same_splats(read_sog(str(d / "own.sog")), read_ply(str(d / "own_decoded.ply")))


def _block_numbered_labels(rng: np.random.Generator, side: int = 256) -> np.ndarray:
    """An SH-labels-like image: the high byte drawn near one of four bases, a base per 32x32
    block (labels numbered along the order), the low byte uniform, blue 0, alpha 255."""
    img = np.zeros((side, side, 4), np.uint8)
    base = rng.integers(0, 4, (side // 32, side // 32)) * 64
    img[..., 1] = np.kron(base, np.ones((32, 32), np.int64)) + rng.integers(0, 12, (side, side))
    img[..., 0] = rng.integers(0, 256, (side, side))
    img[..., 3] = 255
    return img


def test_raw_sh_labels_beat_the_predictor():
    img = _block_numbered_labels(np.random.default_rng(5))
    plain = encode_lossless(img, settings=Vp8lSettings())
    raw = encode_lossless(img, settings=WebpSettings().vp8l_for("shN_labels.webp"))
    assert np.array_equal(_decode(raw), img)
    # within a block green holds 3.6 bits raw against 4.3 for a left difference; the code
    # groups follow the blocks
    assert len(raw) < 0.975 * len(plain), (len(raw), len(plain))
    assert WebpSettings().vp8l_for("quats.webp") == Vp8lSettings()


def test_a_rare_symbol_does_not_cost_its_whole_group():
    """Three transparent texels in an opaque half: without split_rare the alpha code of that half's
    group gets two symbols and every texel of it pays a bit (about 2 KB here)."""
    rng = np.random.default_rng(3)
    img = np.zeros((256, 256, 4), np.uint8)
    img[:128, :, :3] = rng.integers(0, 64, (128, 256, 3))
    img[128:, :, :3] = rng.integers(0, 256, (128, 256, 3))
    img[..., 3] = 255
    opaque = len(encode_lossless(img))
    img[60, 100:103, 3] = 0
    data = encode_lossless(img)
    assert np.array_equal(_decode(data), img)
    assert len(data) - opaque < 600, (len(data), opaque)


def test_auto_picks_the_encoder_per_image_and_size_on_cuda_only():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    auto = WebpSettings()
    assert auto.own_encoder_for(1000, cuda, "shN_labels.webp") == cuda
    for name in ("shN_centroids.webp", "sh0.webp", "means_u.webp", "means_l.webp", "quats.webp", "scales.webp"):
        assert auto.own_encoder_for(1000, cuda, name) is None
    assert auto.own_encoder_for(1_048_576, cuda, "x/sh0.webp") == cuda
    assert auto.own_encoder_for(983_040, cuda, "shN_centroids.webp") == cuda
    assert auto.own_encoder_for(2_000_000, cuda, "means_u.webp") == cuda
    assert auto.own_encoder_for(2_000_000, cuda, "quats.webp") is None
    assert auto.own_encoder_for(auto.device_min_texels, cuda, "quats.webp") == cuda
    assert auto.own_encoder_for(auto.device_min_texels, cpu, "shN_labels.webp") is None
    assert WebpSettings(encoder="libwebp").own_encoder_for(10**8, cuda, "shN_labels.webp") is None


def test_grouping_bits_sums_per_group_what_each_tile_costs():
    """The tile grouping's estimate sums the data's bits per group; it must equal each tile's
    symbols priced under its group's code, summed over the tiles, plus the code descriptions
    and the entropy image."""
    from sogs_core.webp.vp8l_groups import (HEADER_BITS_PER_GROUP, HEADER_BITS_PER_SYMBOL, _centers,
                                            bits_tables, grouping_bits)
    from sogs_core.webp.vp8l_tokens import Alphabets

    ab = Alphabets(cache_bits=3)
    g = torch.Generator().manual_seed(5)
    hist = (torch.rand(300, ab.total, generator=g) < 0.05).float() * torch.randint(1, 50, (300, ab.total),
                                                                                   generator=g).float()
    assign = torch.randint(0, 4, (300,), generator=g)
    assign[assign == 2] = 3                                            # one empty group: it costs nothing
    centers = _centers(hist, assign, 4)
    per_tile = float((hist * bits_tables(centers, ab)[assign]).sum())
    used = [k for k in range(4) if float(centers[k].sum()) > 0]
    header = sum(int((centers[k] > 0).sum()) * HEADER_BITS_PER_SYMBOL + HEADER_BITS_PER_GROUP for k in used)
    expected = per_tile + header + 300 * np.log2(len(used))
    assert float(grouping_bits(300, centers, ab)) == pytest.approx(expected, rel=1e-5)


def _cluster_one_size_at_a_time(tile_hist, ab, max_groups, rounds=6):
    """The tile grouping's definition, each k-means size run on its own (what `cluster_tiles`
    runs side by side): every iteration's grouping a candidate, the cheapest kept, then split_rare."""
    from sogs_core.webp.vp8l_groups import SPLITS, _centers, bits_tables, grouping_bits, renumber, split_rare

    ntiles = tile_hist.shape[0]
    one = torch.zeros(ntiles, dtype=torch.int64)
    assigns, costs = [one], [grouping_bits(ntiles, _centers(tile_hist, one, 1), ab)]
    own = (tile_hist * bits_tables(tile_hist, ab)).sum(1) / tile_hist.sum(1).clamp(min=1)
    rank = torch.argsort(own)
    g = 2
    while g <= min(max_groups, ntiles):
        centers = tile_hist[rank[torch.linspace(0, ntiles - 1, g).long()]]
        for _ in range(rounds):
            assign = (tile_hist @ bits_tables(centers, ab).T).argmin(1)
            centers = _centers(tile_hist, assign, g)
            assigns.append(assign)
            costs.append(grouping_bits(ntiles, centers, ab))
        g *= 2
    costs_t = torch.stack(costs)
    pick = int(costs_t.argmin())
    return split_rare(tile_hist, renumber(assigns[pick]), float(costs_t[pick]), ab, SPLITS)


@pytest.mark.parametrize("seed, tiles, max_groups, cache_bits", [(0, 300, 16, 0), (1, 529, 16, 10), (2, 64, 8, 3),
                                                                  (3, 5, 16, 0), (4, 1, 16, 0), (5, 200, 1, 0)])
def test_tile_groupings_side_by_side_are_those_one_size_at_a_time(seed, tiles, max_groups, cache_bits):
    """cluster_tiles runs its k-means sizes side by side: the same grouping and the same
    estimate, float for float, as running them one at a time, on tiles of mixed statistics
    (a few symbol sets, rare symbols, empty tiles), fewer tiles than groups included."""
    from sogs_core.webp.vp8l_groups import cluster_tiles
    from sogs_core.webp.vp8l_tokens import Alphabets

    ab = Alphabets(cache_bits=cache_bits)
    g = torch.Generator().manual_seed(seed)
    kinds = torch.randint(0, 4, (tiles,), generator=g)
    dense = torch.rand(4, ab.total, generator=g) < torch.tensor([0.02, 0.05, 0.2, 0.01])[:, None]
    hist = (dense[kinds] & (torch.rand(tiles, ab.total, generator=g) < 0.7)).float() \
        * torch.randint(1, 400, (tiles, ab.total), generator=g).float()
    hist[torch.rand(tiles, generator=g) < 0.05] = 0                      # empty tiles (padding)
    got_assign, got_cost = cluster_tiles(hist, ab, max_groups)
    want_assign, want_cost = _cluster_one_size_at_a_time(hist, ab, max_groups)
    assert torch.equal(got_assign, want_assign)
    assert got_cost == want_cost


def _split_rare_one_by_one(tile_hist, assign, cost, ab, max_splits):
    """split_rare's definition: each candidate move tried on its own, its groups counted again
    from its tiles, the first strictly cheapest kept (what `split_rare` prices all at once)."""
    from sogs_core.webp.vp8l_groups import RARE_SHARE, _centers, grouping_bits, renumber

    sizes, offsets = ab.sizes, ab.offsets
    for _ in range(max_splits):
        ngroups = int(assign.max()) + 1
        centers = _centers(tile_hist, assign, ngroups)
        per_tree = torch.stack([centers[:, o:o + a].max(1).values / centers[:, o:o + a].sum(1).clamp(min=1)
                                for a, o in zip(sizes, offsets)], 1)
        mixed = torch.stack([(centers[:, o:o + a] > 0).sum(1) > 1 for a, o in zip(sizes, offsets)], 1)
        best = None
        for g, tree in torch.nonzero((per_tree >= RARE_SHARE) & mixed).tolist():
            o, a = offsets[tree], sizes[tree]
            top = int(centers[g, o:o + a].argmax())
            others = tile_hist[:, o:o + a].sum(1) - tile_hist[:, o + top]
            trial = torch.where((assign == g) & (others > 0), ngroups, assign)
            trial_cost = float(grouping_bits(len(tile_hist), _centers(tile_hist, trial, ngroups + 1), ab))
            if trial_cost < (best[0] if best is not None else cost):
                best = (trial_cost, trial)
        if best is None:
            break
        cost, assign = best[0], renumber(best[1])
    return assign, cost


@pytest.mark.parametrize("seed, groups", [(0, 1), (1, 3), (2, 6), (3, 12)])
def test_rare_symbol_moves_priced_together_are_those_tried_one_by_one(seed, groups):
    """split_rare prices every candidate move at once: the same moves and estimates, float for
    float, as trying them one by one, on tiles whose trees are dominated by one symbol with a
    few rare others (the case it exists for), several candidates a split."""
    from sogs_core.webp.vp8l_groups import _centers, grouping_bits, split_rare
    from sogs_core.webp.vp8l_tokens import Alphabets

    ab = Alphabets(cache_bits=0)
    g = torch.Generator().manual_seed(seed)
    tiles = 240
    hist = torch.zeros(tiles, ab.total)
    assign = torch.randint(0, groups, (tiles,), generator=g)
    for tree, (a, o) in enumerate(zip(ab.sizes, ab.offsets)):
        main = torch.randint(0, a, (groups,), generator=g)               # each group's one symbol of the tree
        hist[torch.arange(tiles), o + main[assign]] += torch.randint(500, 2000, (tiles,), generator=g).float()
        rare = torch.rand(tiles, generator=g) < 0.04                     # a few tiles hold rare symbols
        hist[rare, o + torch.randint(0, a, (int(rare.sum()),), generator=g)] += torch.randint(
            1, 4, (int(rare.sum()),), generator=g).float()
    cost = float(grouping_bits(tiles, _centers(hist, assign, groups), ab))
    got = split_rare(hist, assign, cost, ab, 2)
    want = _split_rare_one_by_one(hist, assign, cost, ab, 2)
    assert torch.equal(got[0], want[0]) and got[1] == want[1]
    assert got[1] < cost and int(got[0].max()) + 1 == groups + 2          # two moves taken
