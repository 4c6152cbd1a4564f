"""Our lossless WebP (VP8L) encoder: RGBA image -> .webp bytes, on any torch device.

Why our own: libwebp encodes one image per call on one CPU thread, which made the last
seconds of a large scene. Every step here is a bulk tensor operation, so on the GPU a large
image encodes several times faster than in libwebp (most of the time is the Python that builds
the prefix codes); on the CPU it is much slower than libwebp (bench/NOTES.md).

What it writes (WebP lossless bitstream spec): subtract-green when it lowers the red and blue
entropy; the predictor transform with the best of the 14 modes per tile; LZ77 copies of runs
equal to the left or upper pixel; a colour cache where the estimate says it pays; prefix codes
per group of tiles (the entropy image); no cross-colour transform, no colour indexing (our
images are 8-bit attribute codes, not photographs). Output is checked against libwebp's
decoder in the tests.
"""
from __future__ import annotations


import numpy as np
import torch

from sogs_core.model.counting import count_labels
from sogs_core.webp.vp8l_bits import BitStream
from sogs_core.webp.vp8l_predict import choose_modes, subtract_green, tile_index
from sogs_core.webp.vp8l_prefix import canonical_codes, code_lengths, emitted_widths, write_code
from sogs_core.webp.vp8l_groups import cluster_tiles
from sogs_core.webp.vp8l_tokens import ALPHA, BLUE, DIST, GREEN, RED, Alphabets, Tokens, find_copies, histograms, tokenize
from sogs_core.settings import Vp8lSettings

SIGNATURE = 0x2F
PREDICTOR, SUBTRACT_GREEN = 0, 2
MAX_SIDE = 16384


class _Codes:
    """Prefix codes of several groups: their descriptions, and (groups, all symbols of the five
    trees) code and width lookups on the device."""

    def __init__(self, hist: torch.Tensor, alphabets: Alphabets, device: torch.device):
        h = hist.cpu().numpy()
        self.total = alphabets.total
        self.offsets = alphabets.offsets
        self.lengths = []
        codes = np.zeros(h.shape, np.int64)
        widths = np.zeros(h.shape, np.int64)
        for g in range(h.shape[0]):
            per_tree = []
            for a, off in zip(alphabets.sizes, alphabets.offsets):
                lengths = code_lengths(h[g, off:off + a])
                per_tree.append(lengths)
                codes[g, off:off + a] = canonical_codes(lengths)
                widths[g, off:off + a] = emitted_widths(lengths)
            self.lengths.append(per_tree)
        self.code = torch.from_numpy(codes).to(device)
        self.width = torch.from_numpy(widths).to(device)

    def write(self, bits: BitStream) -> None:
        for per_tree in self.lengths:
            for lengths in per_tree:
                write_code(bits, lengths)


def _write_symbols(bits: BitStream, tokens: Tokens, group: torch.Tensor, codes: _Codes) -> None:
    """The data: per token, four fields: the green-tree symbol; then red, blue, alpha for a
    literal, the length's extra bits, the distance symbol and its extra bits for a copy, and
    nothing more for a colour cache index."""
    offs = torch.tensor(codes.offsets, device=group.device)
    idx = group[:, None] * codes.total + tokens.sym.clamp(min=0) + offs
    code = codes.code.reshape(-1)[idx]
    width = torch.where(tokens.sym >= 0, codes.width.reshape(-1)[idx], 0)
    copy = tokens.kind == 1
    values = torch.stack([
        code[:, GREEN],
        torch.where(copy, tokens.extra_val[:, 0], code[:, RED]),
        torch.where(copy, code[:, DIST], code[:, BLUE]),
        torch.where(copy, tokens.extra_val[:, 1], code[:, ALPHA])], 1)
    widths = torch.stack([
        width[:, GREEN],
        torch.where(copy, tokens.extra_width[:, 0], width[:, RED]),
        torch.where(copy, width[:, DIST], width[:, BLUE]),
        torch.where(copy, tokens.extra_width[:, 1], width[:, ALPHA])], 1)
    bits.put_fields(values, widths)


def _write_sub_image(bits: BitStream, pixels: torch.Tensor) -> None:
    """A transform's or the entropy image's pixels (M, 4) RGBA: no cache, one code group,
    literals only."""
    bits.put(0, 1)                                     # no colour cache
    tokens = tokenize(pixels.long())
    group = torch.zeros(len(tokens.pos), dtype=torch.int64, device=pixels.device)
    codes = _Codes(histograms(tokens, group, 1), tokens.alphabets, pixels.device)
    codes.write(bits)
    _write_symbols(bits, tokens, group, codes)


def _entropies(rows: list[torch.Tensor]) -> torch.Tensor:
    """(len(rows),) float64 Shannon entropies in bits of rows of byte values, on their device
    (0 for an empty row)."""
    h = torch.stack([count_labels(v.long(), 256) for v in rows]).double()
    h = h / h.sum(1, keepdim=True).clamp_min(1.0)
    return -torch.where(h > 0, h * torch.log2(h.clamp_min(1e-300)), 0.0).sum(1)


def _wants_subtract_green(p: torch.Tensor, predicted: bool = True) -> torch.Tensor:
    """Whether R - G and B - G have lower entropy than R and B (a bool tensor on p's device,
    read with the other header flag): of the left-neighbour differences when a predictor
    follows, else of the texels themselves."""
    d = (p[1:] - p[:-1]) & 255 if predicted else p
    e = _entropies([d[:, 0], d[:, 2], (d[:, 0] - d[:, 1]) & 255, (d[:, 2] - d[:, 1]) & 255])
    return e[2] + e[3] < e[0] + e[1]


def _riff(payload: bytes) -> bytes:
    chunk = b"VP8L" + len(payload).to_bytes(4, "little") + payload + (b"\0" if len(payload) % 2 else b"")
    return b"RIFF" + (4 + len(chunk)).to_bytes(4, "little") + b"WEBP" + chunk


def _predict(bits: BitStream, p: torch.Tensor, h: int, w: int, settings: Vp8lSettings) -> torch.Tensor:
    """The predictor transform: each tile's best mode, written as its sub-image; returns the
    residuals (N, 4)."""
    pb = settings.predictor_bits
    modes, res = choose_modes(p, h, w, pb, settings.mode_rounds)
    bits.put(1, 1)
    bits.put(PREDICTOR, 2)
    bits.put(pb - 2, 3)
    mode_px = torch.zeros(len(modes), 4, dtype=torch.int64, device=p.device)
    mode_px[:, 1] = modes
    mode_px[:, 3] = 255
    _write_sub_image(bits, mode_px)
    return res


def encode_lossless(rgba: np.ndarray | torch.Tensor, device: str | torch.device | None = None,
                    settings: Vp8lSettings = Vp8lSettings()) -> bytes:
    """(H, W, 4) uint8 RGBA -> lossless WebP file bytes, every texel exact (transparent ones
    keep their colour). Runs on `device` (default: where `rgba` is)."""
    img = torch.as_tensor(rgba)
    if img.dim() != 3 or img.shape[2] != 4 or img.dtype != torch.uint8:
        raise ValueError(f"expected an (H, W, 4) uint8 image, got {tuple(img.shape)} {img.dtype}")
    h, w = int(img.shape[0]), int(img.shape[1])
    if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
        raise ValueError(f"a WebP image is 1..{MAX_SIDE} texels a side, got {w} x {h}")
    dev = torch.device(device) if device is not None else img.device
    p = img.to(dev).reshape(-1, 4).int()
    bits = BitStream(dev)
    bits.put(SIGNATURE, 8)
    bits.put(w - 1, 14)
    bits.put(h - 1, 14)
    # the two header decisions read back from the device together
    alpha_used, subtract = torch.stack([(p[:, 3] != 255).any(), _wants_subtract_green(p, settings.predictor)]).tolist()
    bits.put(int(alpha_used), 1)
    bits.put(0, 3)
    if subtract:
        bits.put(1, 1)
        bits.put(SUBTRACT_GREEN, 2)
        p = subtract_green(p)
    res = _predict(bits, p, h, w, settings) if settings.predictor else p
    bits.put(0, 1)                                     # end of transforms
    gb = settings.group_bits
    tiles = tile_index(h, w, gb, dev)
    ntiles = -(-h >> gb) * -(-w >> gb)                 # tile_index's count, not read back
    res = res.long()
    copies = find_copies(res, w) if settings.copies else None
    best = None
    for cache_bits in settings.cache_bits:   # each cache size with its own grouping: the smallest estimate
        candidate = tokenize(res, copies, cache_bits)
        tile_hist = histograms(candidate, tiles[candidate.pos], ntiles)
        assign, cost = cluster_tiles(tile_hist, candidate.alphabets, settings.max_groups)
        if best is None or cost < best[0]:
            best = (cost, candidate, assign)
    _, tokens, assign = best
    cache_bits = tokens.alphabets.cache_bits
    if cache_bits:
        bits.put(1, 1)
        bits.put(cache_bits, 4)
    else:
        bits.put(0, 1)
    ngroups = int(assign.max()) + 1
    if ngroups > 1:
        bits.put(1, 1)
        bits.put(gb - 2, 3)
        ent = torch.zeros(ntiles, 4, dtype=torch.int64, device=dev)
        ent[:, 0] = assign >> 8
        ent[:, 1] = assign & 255
        ent[:, 3] = 255
        _write_sub_image(bits, ent)
    else:
        bits.put(0, 1)
    group = assign[tiles[tokens.pos]]
    codes = _Codes(histograms(tokens, group, ngroups), tokens.alphabets, dev)
    codes.write(bits)
    _write_symbols(bits, tokens, group, codes)
    return _riff(bits.to_bytes())
