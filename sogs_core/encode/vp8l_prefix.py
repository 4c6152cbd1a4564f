"""Prefix (Huffman) codes of VP8L: code lengths from counts, canonical codes, and the code
description written before the data (the "simple" form for one or two small symbols, else the
"normal" form: code lengths run-length coded with a second, 7-bit-limited prefix code).

Conventions the decoder relies on (WebP lossless bitstream spec, section 6): codes are
canonical in symbol order and read bit by bit from the most significant, so they are written
bit-reversed into the LSB-first stream; a code with one used symbol takes zero bits per symbol.
"""
from __future__ import annotations

import heapq

import numpy as np
import torch

from .vp8l_bits import BitStream

MAX_LENGTH = 15
CODE_LENGTH_ORDER = (17, 18, 0, 1, 2, 3, 4, 5, 16, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)


def _huffman_depths(counts: np.ndarray) -> np.ndarray:
    """Unlimited Huffman depths of positive `counts` (two or more): merge the two lightest
    nodes until one is left, remembering parents, then read depths from the root down."""
    n = len(counts)
    heap = [(float(c), i) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    parent = [0] * (2 * n - 1)
    nxt = n
    while len(heap) > 1:
        c1, a = heapq.heappop(heap)
        c2, b = heapq.heappop(heap)
        parent[a] = parent[b] = nxt
        heapq.heappush(heap, (c1 + c2, nxt))
        nxt += 1
    depth = [0] * (2 * n - 1)
    for node in range(2 * n - 3, -1, -1):          # parents are created after their children
        depth[node] = depth[parent[node]] + 1
    return np.array(depth[:n], np.int64)


def code_lengths(counts: np.ndarray, limit: int = MAX_LENGTH) -> np.ndarray:
    """Length-limited Huffman code lengths for symbol `counts` (0 for unused symbols).

    A single used symbol gets length 1 (the decoder reads it in zero bits). Over-long codes are
    shortened the way zlib-style encoders do: raise the smallest counts and rebuild."""
    counts = np.asarray(counts, np.float64)
    lengths = np.zeros(len(counts), np.int64)
    used = np.flatnonzero(counts > 0)
    if len(used) == 0:
        return lengths
    if len(used) == 1:
        lengths[used] = 1
        return lengths
    c = counts[used]
    floor = 1.0
    while True:
        depth = _huffman_depths(np.maximum(c, floor))
        if depth.max() <= limit:
            lengths[used] = depth
            return lengths
        floor *= 2.0


_REVERSED_BYTE = np.array([int(f"{b:08b}"[::-1], 2) for b in range(256)], np.int64)


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Bit-reversed canonical codes (ready for the LSB-first stream) for code `lengths`:
    codes of one length are consecutive in symbol order, shorter lengths come first."""
    lengths = np.asarray(lengths, np.int64)
    codes = np.zeros(len(lengths), np.int64)
    if (lengths > 0).sum() <= 1:
        return codes
    bl_count = np.bincount(lengths, minlength=MAX_LENGTH + 1)
    bl_count[0] = 0
    next_code = np.zeros(MAX_LENGTH + 1, np.int64)
    code = 0
    for bits in range(1, MAX_LENGTH + 1):
        code = (code + bl_count[bits - 1]) << 1
        next_code[bits] = code
    used = np.flatnonzero(lengths)
    ln = lengths[used]
    order = np.lexsort((used, ln))                           # by length, then symbol
    first_of_length = np.searchsorted(ln[order], ln[order])  # rank within its length
    rank = np.arange(len(order)) - first_of_length
    plain = next_code[ln[order]] + rank
    rev16 = (_REVERSED_BYTE[plain & 255] << 8) | _REVERSED_BYTE[(plain >> 8) & 255]
    codes[used[order]] = rev16 >> (16 - ln[order])
    return codes


def emitted_widths(lengths: np.ndarray) -> np.ndarray:
    """Bits each symbol takes in the data: its length, or 0 for every symbol of a one-symbol code."""
    lengths = np.asarray(lengths, np.int64)
    return np.zeros_like(lengths) if (lengths > 0).sum() <= 1 else lengths


def _length_tokens(lengths: np.ndarray) -> list[tuple[int, int, int]]:
    """Code lengths -> (token, extra value, extra width): 0..15 literal, 16 repeat previous
    non-zero 3..6 times, 17 zeros 3..10, 18 zeros 11..138."""
    out: list[tuple[int, int, int]] = []
    n = len(lengths)
    i = 0
    while i < n:
        v = int(lengths[i])
        j = i
        while j < n and lengths[j] == v:
            j += 1
        run = j - i
        if v == 0:
            while run >= 11:
                k = min(run, 138)
                out.append((18, k - 11, 7))
                run -= k
            if run >= 3:
                out.append((17, run - 3, 3))
                run = 0
            out.extend((0, 0, 0) for _ in range(run))
        else:
            out.append((v, 0, 0))
            run -= 1
            while run >= 3:
                k = min(run, 6)
                out.append((16, k - 3, 2))
                run -= k
            out.extend((v, 0, 0) for _ in range(run))
        i = j
    return out


def write_code(bits: BitStream, lengths: np.ndarray) -> None:
    """Write the description of the prefix code with these `lengths` (alphabet = len(lengths))."""
    used = np.flatnonzero(lengths)
    if len(used) == 0:
        used = np.array([0])
    if len(used) <= 2 and used.max() < 256:
        bits.put(1, 1)
        bits.put(len(used) - 1, 1)
        first = int(used[0])
        if first <= 1:
            bits.put(0, 1)
            bits.put(first, 1)
        else:
            bits.put(1, 1)
            bits.put(first, 8)
        if len(used) == 2:
            bits.put(int(used[1]), 8)
        return
    tokens = _length_tokens(lengths)
    tcounts = np.bincount([t for t, _, _ in tokens], minlength=19)
    tlen = code_lengths(tcounts, 7)
    tcode = canonical_codes(tlen)
    twidth = emitted_widths(tlen)
    ordered = [int(tlen[s]) for s in CODE_LENGTH_ORDER]
    count = max(4, max((k + 1 for k, v in enumerate(ordered) if v), default=4))
    bits.put(0, 1)
    bits.put(count - 4, 4)
    for v in ordered[:count]:
        bits.put(v, 3)
    bits.put(0, 1)          # max_symbol = the alphabet size: the tokens cover every symbol
    for t, extra, width in tokens:
        bits.put(int(tcode[t]), int(twidth[t]))
        bits.put(extra, width)


def prefix_split(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """LZ77 prefix coding of values >= 1 (copy lengths, distance codes): (prefix code, width of
    the extra bits, extra bits). 1..4 are codes 0..3; above, the code holds the position of the
    highest set bit of value - 1 and the bit below it, the extra bits the rest."""
    d = values - 1
    hb = torch.frexp(d.clamp(min=1).double()).exponent.long() - 1     # floor(log2(d)), exact
    width = (hb - 1).clamp(min=0)
    second = (d >> width) & 1
    small = values <= 4
    zero = torch.zeros_like(d)
    code = torch.where(small, d, 2 * hb + second)
    return code, torch.where(small, zero, width), torch.where(small, zero, d & ((1 << width) - 1))
