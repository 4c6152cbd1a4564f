"""Prefix (Huffman) codes of VP8L: code lengths from counts, canonical codes, and the code
description written before the data (the "simple" form for one or two small symbols, else the
"normal" form: code lengths run-length coded with a second, 7-bit-limited prefix code).

Conventions the decoder relies on (WebP lossless bitstream spec, section 6): codes are
canonical in symbol order and read bit by bit from the most significant, so they are written
bit-reversed into the LSB-first stream; a code with one used symbol takes zero bits per symbol.
"""
from __future__ import annotations

import numpy as np
import torch

from sogs_core.webp.vp8l_bits import BitStream

MAX_LENGTH = 15
CODE_LENGTH_ORDER = (17, 18, 0, 1, 2, 3, 4, 5, 16, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)


def _huffman_depths(counts: np.ndarray) -> np.ndarray:
    """Unlimited Huffman depths of positive `counts` (two or more), by the two-queue method:
    leaves sorted by count, merged nodes queued in the order they are made (their weights come
    out non-decreasing), so the two lightest are always at the heads of the two queues; ties go
    to leaves, then to the earlier node, as a heap keyed (count, index) would break them. Then
    depths from the root down. Plain lists: faster than heapq on the SH labels' trees
    (bench/NOTES.md)."""
    n = len(counts)
    order = np.argsort(counts, kind="stable")
    leaf = counts[order].tolist()
    merged: list[float] = []
    parent = [0] * (2 * n - 1)
    i = j = 0
    for k in range(n - 1):                          # unrolled: this loop is the code's hot spot
        if i < n and (j >= len(merged) or leaf[i] <= merged[j]):
            a, wa, i = i, leaf[i], i + 1
        else:
            a, wa, j = n + j, merged[j], j + 1
        if i < n and (j >= len(merged) or leaf[i] <= merged[j]):
            b, wb, i = i, leaf[i], i + 1
        else:
            b, wb, j = n + j, merged[j], j + 1
        parent[a] = parent[b] = n + k
        merged.append(wa + wb)
    depth = [0] * (2 * n - 1)
    for node in range(2 * n - 3, n - 1, -1):       # merged nodes: each after its parent
        depth[node] = depth[parent[node]] + 1
    out = np.empty(n, np.int64)
    out[order] = np.asarray(depth)[np.asarray(parent[:n])] + 1
    return out


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


def _length_tokens(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Code lengths -> (token, extra value, extra width) arrays: 0..15 literal, 16 repeat the
    previous non-zero length 3..6 times, 17 zeros 3..10, 18 zeros 11..138. Greedy per run of
    equal lengths, computed for all runs at once: a run of zeros is full 18s, then one 18 or 17
    for the rest or the rest as literals; a run of a length v is v, then full 16s, then one 16
    or the rest as literals."""
    lengths = np.asarray(lengths, np.int64)
    starts = np.flatnonzero(np.diff(lengths, prepend=-1))
    runs = np.diff(np.append(starts, len(lengths)))
    v = lengths[starts]
    zero = v == 0
    rest = np.where(zero, runs, runs - 1)                 # what follows a non-zero run's literal
    chunk = np.where(zero, 138, 6)
    full, tail = rest // chunk, rest % chunk
    tail_token = np.where(zero, np.where(tail >= 11, 18, np.where(tail >= 3, 17, -1)), np.where(tail >= 3, 16, -1))
    tail_extra = np.where(tail_token == 18, tail - 11, tail - 3)
    tail_width = np.select([tail_token == 18, tail_token == 17, tail_token == 16], [7, 3, 2], 0)
    # per run, four segments in stream order: the run's literal, full repeats, the tail token,
    # the tail as literals
    token = np.stack([v, np.where(zero, 18, 16), tail_token, v], 1)
    extra = np.stack([np.zeros_like(v), np.where(zero, 127, 3), tail_extra, np.zeros_like(v)], 1)
    width = np.stack([np.zeros_like(v), np.where(zero, 7, 2), tail_width, np.zeros_like(v)], 1)
    count = np.stack([(~zero).astype(np.int64), full, (tail_token >= 0).astype(np.int64),
                      np.where(tail_token >= 0, 0, tail)], 1)
    count, token, extra, width = count.ravel(), token.ravel(), extra.ravel(), width.ravel()
    return np.repeat(token, count), np.repeat(extra, count), np.repeat(width, count)


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
    token, extra, width = _length_tokens(lengths)
    tlen = code_lengths(np.bincount(token, minlength=19), 7)
    tcode = canonical_codes(tlen)
    twidth = emitted_widths(tlen)
    ordered = [int(tlen[s]) for s in CODE_LENGTH_ORDER]
    count = max(4, max((k + 1 for k, v in enumerate(ordered) if v), default=4))
    bits.put(0, 1)
    bits.put(count - 4, 4)
    for v in ordered[:count]:
        bits.put(v, 3)
    bits.put(0, 1)          # max_symbol = the alphabet size: the tokens cover every symbol
    bits.put_host(np.stack([tcode[token], extra], 1), np.stack([twidth[token], width], 1))


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
