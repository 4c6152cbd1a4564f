"""The residual image as VP8L symbols: literal pixels, LZ77 copies and colour cache indices, and
their counts per group of tiles (the entropy groups themselves: vp8l_groups).

Copies: the parallel form of the two copies that pay on our images, runs of a pixel equal to
its left neighbour (distance code 2) or to the one above (distance code 1). A run becomes a copy
(split at the format's 4096-pixel limit) when it costs fewer bits than its literals would.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from sogs_core.model.counting import count_labels
from sogs_core.webp.vp8l_predict import channel_hist
from sogs_core.webp.vp8l_prefix import prefix_split

GREEN, RED, BLUE, ALPHA, DIST = range(5)
MAX_COPY = 4096
LEFT_CODE, UP_CODE = 2, 1                       # distance codes of (1, 0) and (0, 1)


@dataclass(frozen=True)
class Alphabets:
    """The five trees' alphabet sizes for a colour cache of 2**cache_bits entries (0: none):
    green holds 256 values, 24 length codes and the cache indices."""
    cache_bits: int = 0

    @property
    def sizes(self) -> tuple[int, ...]:
        return (280 + (1 << self.cache_bits if self.cache_bits else 0), 256, 256, 256, 40)

    @property
    def offsets(self) -> tuple[int, ...]:
        out, o = [], 0
        for a in self.sizes:
            out.append(o)
            o += a
        return tuple(out)

    @property
    def total(self) -> int:
        return sum(self.sizes)


CACHE_MULTIPLIER = 0x1E35A7BD


@dataclass
class Tokens:
    """Symbols in stream order. `pos`: the pixel each starts at; `kind`: 0 literal, 1 copy;
    `sym`: (E, 5) symbol per tree (-1 where the tree is not used); `extra_val`/`extra_width`:
    (E, 2) the copy's length and distance extra bits."""
    pos: torch.Tensor
    kind: torch.Tensor
    sym: torch.Tensor
    extra_val: torch.Tensor
    extra_width: torch.Tensor
    alphabets: Alphabets


def pixel_keys(res: torch.Tensor) -> torch.Tensor:
    """(N, 4) residual bytes -> one int64 per pixel."""
    return res[:, 0] | (res[:, 1] << 8) | (res[:, 2] << 16) | (res[:, 3] << 24)


def literal_costs(res: torch.Tensor) -> torch.Tensor:
    """Bits per pixel when every pixel is a literal under one image-wide code per channel
    (Shannon estimate)."""
    hist = channel_hist(res)
    table = (-torch.log2((hist + 1e-3) / hist.sum(1, keepdim=True))).clamp(min=1.0)   # a prefix code spends >= 1 bit
    table = torch.where(hist.sum(1, keepdim=True) == hist, torch.zeros_like(table), table)  # one symbol: 0 bits
    return table.reshape(-1)[res + torch.arange(4, device=res.device) * 256].sum(1)


def _inside(n: int, begin: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """(n,) mask of the positions i with begin <= i < end for one of the intervals."""
    edges = torch.zeros(n + 1, dtype=torch.int32, device=begin.device)
    edges.index_add_(0, begin, torch.ones_like(begin, dtype=torch.int32))
    edges.index_add_(0, end, -torch.ones_like(end, dtype=torch.int32))
    return torch.cumsum(edges, 0)[:n] > 0


def _runs(eq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximal runs of True in `eq`: (starts, lengths)."""
    e = eq.to(torch.int8)
    d = torch.diff(e, prepend=e.new_zeros(1), append=e.new_zeros(1))
    starts = torch.nonzero(d == 1).squeeze(1)
    ends = torch.nonzero(d == -1).squeeze(1)
    return starts, ends - starts


def _copy_bits(length: torch.Tensor) -> torch.Tensor:
    """Rough bits of a copy: its length code and extra bits, one distance symbol."""
    _, width, _ = prefix_split(length)
    return 6.0 + width.double() + 1.0


def find_copies(res: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Copies worth taking: (start pixel, length, distance code), sorted by start; first runs
    of pixels equal to their left neighbour, then, among the rest, runs equal to the one above."""
    n = res.shape[0]
    keys = pixel_keys(res)
    lit = literal_costs(res)
    csum = torch.cat([lit.new_zeros(1, dtype=torch.float64), torch.cumsum(lit.double(), 0)])   # float32 loses bits at 8M
    covered = torch.zeros(n, dtype=torch.bool, device=res.device)
    picks = []
    for code, dist in ((LEFT_CODE, 1), (UP_CODE, width)):
        if dist >= n:
            continue
        eq = torch.zeros(n, dtype=torch.bool, device=res.device)
        eq[dist:] = keys[dist:] == keys[:-dist]
        eq &= ~covered
        starts, lengths = _runs(eq)
        if len(starts) == 0:
            continue
        worth = (csum[starts + lengths] - csum[starts]) > _copy_bits(lengths.clamp(max=MAX_COPY))
        starts, lengths = starts[worth], lengths[worth]
        # split runs at the 4096-pixel limit
        pieces = (lengths + MAX_COPY - 1) // MAX_COPY
        owner = torch.repeat_interleave(torch.arange(len(starts), device=res.device), pieces)
        first = torch.cumsum(pieces, 0) - pieces
        k = torch.arange(len(owner), device=res.device) - first[owner]
        p_start = starts[owner] + k * MAX_COPY
        p_len = torch.minimum(lengths[owner] - k * MAX_COPY, torch.full_like(p_start, MAX_COPY))
        picks.append((p_start, p_len, torch.full_like(p_start, code)))
        covered |= _inside(n, starts, starts + lengths)
    if not picks:
        empty = torch.zeros(0, dtype=torch.int64, device=res.device)
        return empty, empty, empty
    start = torch.cat([p[0] for p in picks])
    length = torch.cat([p[1] for p in picks])
    code = torch.cat([p[2] for p in picks])
    order = torch.argsort(start)
    return start[order], length[order], code[order]


def cache_hits(keys: torch.Tensor, cache_bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Which pixels the colour cache holds when they come (every pixel before them was
    inserted, in stream order) and their cache index: a pixel hits when the last earlier pixel
    with the same hash had the same colour."""
    argb = ((keys >> 24) << 24) | ((keys & 0xFF) << 16) | (keys & 0xFF00) | ((keys >> 16) & 0xFF)
    slot = ((argb * CACHE_MULTIPLIER) & 0xFFFFFFFF) >> (32 - cache_bits)
    order = torch.sort(slot, stable=True).indices                 # by slot, then position
    same_slot = torch.zeros(len(keys), dtype=torch.bool, device=keys.device)
    same_slot[1:] = slot[order[1:]] == slot[order[:-1]]
    prev_same = torch.zeros(len(keys), dtype=torch.bool, device=keys.device)
    prev_same[1:] = keys[order[1:]] == keys[order[:-1]]
    hit = torch.zeros(len(keys), dtype=torch.bool, device=keys.device)
    hit[order] = same_slot & prev_same
    return hit, slot


def tokenize(res: torch.Tensor, copies: Optional[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None,
             cache_bits: int = 0) -> Tokens:
    """Residual pixels (N, 4) int64 -> symbols in stream order: literals, the `copies` given
    (find_copies' answer; none when None), colour cache indices when `cache_bits` (a pixel in
    the cache is coded as its index)."""
    n = res.shape[0]
    dev = res.device
    if copies is None:
        copies = (torch.zeros(0, dtype=torch.int64, device=dev),) * 3
    c_start, c_len, c_code = copies
    copied = _inside(n, c_start + 1, c_start + c_len)        # every pixel of a copy but its first
    pos = torch.nonzero(~copied).squeeze(1)
    kind = torch.zeros(n, dtype=torch.int64, device=dev)
    kind[c_start] = 1
    kind = kind[pos]
    # every field chosen by torch.where and copies written at their rows (found by search):
    # masked writes would each read their mask's count back from the device
    sym = torch.full((len(pos), 5), -1, dtype=torch.int64, device=dev)
    lit = (kind == 0)[:, None]
    r = res.index_select(0, pos).long()
    literal = torch.stack([r[:, 1], r[:, 0], r[:, 2], r[:, 3]], 1)      # GREEN, RED, BLUE, ALPHA
    sym[:, :4] = torch.where(lit, literal, sym[:, :4])
    if cache_bits:
        hit, slot = cache_hits(pixel_keys(res), cache_bits)
        in_cache = lit[:, 0] & hit.index_select(0, pos)
        sym[:, GREEN] = torch.where(in_cache, 280 + slot.index_select(0, pos), sym[:, GREEN])
        sym[:, RED:ALPHA + 1] = torch.where(in_cache[:, None], -1, sym[:, RED:ALPHA + 1])
    extra_val = torch.zeros(len(pos), 2, dtype=torch.int64, device=dev)
    extra_width = torch.zeros(len(pos), 2, dtype=torch.int64, device=dev)
    if len(c_start):
        lcode, lwidth, lextra = prefix_split(c_len)
        dcode, dwidth, dextra = prefix_split(c_code)
        rows = torch.searchsorted(pos, c_start)               # each copy's first pixel is a token
        sym[rows, GREEN] = 256 + lcode
        sym[rows, DIST] = dcode
        extra_val[rows, 0], extra_width[rows, 0] = lextra, lwidth
        extra_val[rows, 1], extra_width[rows, 1] = dextra, dwidth
    return Tokens(pos, kind, sym, extra_val, extra_width, Alphabets(cache_bits))


def histograms(tokens: Tokens, group: torch.Tensor, ngroups: int) -> torch.Tensor:
    """(ngroups, alphabets.total) symbol counts of each group (the five trees side by side);
    `group` is each token's group."""
    ab = tokens.alphabets
    offs = torch.tensor(ab.offsets, device=group.device)
    valid = tokens.sym >= 0                     # a field with no symbol counts nowhere (weight 0)
    idx = group[:, None] * ab.total + tokens.sym.clamp(min=0) + offs
    return count_labels(idx, ngroups * ab.total, weights=valid).reshape(ngroups, ab.total).float()
