"""Niantic `.spz` (Scaniverse and others), versions 2 to 4, SH degree 0..3.

v2/v3: one gzip stream holding a 16-byte header (magic "NGSP", version, count, SH degree,
fractional bits, flags) then the attribute blocks one after another: positions (3 x 24-bit
fixed point), alphas (u8 after the sigmoid), colours (u8, SH DC scaled by 0.15), scales (u8,
(log + 10) x 16), rotations (v2: x, y, z as u8; v3+: smallest three in 32 bits) and SH (u8,
(v x 128) + 128, coefficient-major with the three channels inside). v4: a plain 32-byte header,
a table of (compressed, uncompressed) sizes at `toc offset`, then one zstd stream per block.
No coordinate conversion: splat-transform reads and writes SPZ raw, and so do we.

Nothing is sized from the header before its count is checked: the blocks' total must fit the
decompressed bytes, and decompression itself is capped at that total.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

from sogs_core.model.errors import SplatFileError
from sogs_core.model.splats import Splats
from sogs_core.formats.checks import finish, need_count
from sogs_core.formats.source import Source, load

MAGIC = 0x5053474E                 # "NGSP" little-endian
VERSIONS = (2, 3, 4)
SH_BYTES = (0, 9, 24, 45)          # all three channels, by SH degree
COLOR_SCALE = 0.15
#: deflate cannot expand more than ~1032:1, zstd (RLE blocks) not beyond ~43k:1: a header whose
#: blocks need more than this many times the compressed bytes is lying about its count
MAX_GZIP_RATIO = 1100
MAX_ZSTD_RATIO = 65536


class SpzError(SplatFileError):
    """A `.spz` file that cannot be read."""


def block_sizes(n: int, degree: int, version: int) -> list[int]:
    """Bytes of positions, alphas, colours, scales, rotations (and SH when degree > 0)."""
    sizes = [9 * n, n, 3 * n, 3 * n, (3 if version == 2 else 4) * n]
    if degree:
        sizes.append(SH_BYTES[degree] * n)
    return sizes


def _header(head: bytes, name: str) -> tuple[int, int, int, int, int]:
    """(version, count, SH degree, fractional bits, flags) of a 16-byte header."""
    magic, version, count, degree, frac, flags = struct.unpack_from("<IIIBBB", head)
    if magic != MAGIC:
        raise SpzError(name, "not an SPZ file (no 'NGSP' magic)")
    if version not in VERSIONS:
        raise SpzError(name, f"unsupported SPZ version {version} (this reader knows {', '.join(map(str, VERSIONS))})")
    if degree > 3:
        raise SpzError(name, f"SH degree {degree} is not supported (0..3)")
    if count == 0:
        raise SpzError(name, "zero splats")
    need_count(name, count)
    if frac > 23:
        raise SpzError(name, f"{frac} fractional bits for 24-bit positions")
    return version, count, degree, frac, flags


def _gunzip(data: memoryview, name: str) -> bytes:
    """The v2/v3 payload, decompressed no further than its header says it is long."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        head = d.decompress(data, 16)
        if len(head) < 16:
            raise SpzError(name, "truncated: the gzip stream ends inside the 16-byte header")
        version, count, degree, _, _ = _header(head, name)
        total = sum(block_sizes(count, degree, version))
        if total > MAX_GZIP_RATIO * len(data):
            raise SpzError(name, f"header claims {count:,} splats ({total:,} bytes) but the gzip stream of "
                                 f"{len(data):,} bytes cannot hold that many")
        body = d.decompress(d.unconsumed_tail, total)
    except zlib.error as exc:
        raise SpzError(name, f"broken gzip stream: {exc}") from None
    if len(body) < total:
        raise SpzError(name, f"truncated: {count:,} splats need {total:,} bytes after the header, the gzip "
                             f"stream holds {len(body):,}")
    try:
        extra = d.decompress(d.unconsumed_tail, 1)           # one byte more at most: is there any?
    except zlib.error:
        extra = b""                                          # a damaged trailer after complete data
    if extra:
        raise SpzError(name, f"the gzip stream holds more than the {total:,} bytes its header's {count:,} "
                             "splats need (left over after them; not read further)")
    return head + body


def _zstd_blocks(buf: memoryview, name: str) -> tuple[tuple, list[bytes]]:
    """The v4 header and its decompressed blocks."""
    if len(buf) < 32:
        raise SpzError(name, f"truncated: {len(buf)} bytes, the v4 header alone is 32")
    version, count, degree, frac, flags = _header(bytes(buf[:16]), name)
    n_streams, toc = buf[15], struct.unpack_from("<I", buf, 16)[0]
    sizes = block_sizes(count, degree, version)
    if n_streams != len(sizes):
        raise SpzError(name, f"{n_streams} streams for SH degree {degree}; expected {len(sizes)}")
    if toc < 32 or toc + 16 * n_streams > len(buf):
        raise SpzError(name, f"table of contents at byte {toc} lies outside the file ({len(buf)} bytes)")
    import zstandard

    blocks, at = [], toc + 16 * n_streams
    for i, expect in enumerate(sizes):
        packed, unpacked = struct.unpack_from("<QQ", buf, toc + 16 * i)
        if unpacked != expect:
            raise SpzError(name, f"stream {i} is {unpacked:,} bytes uncompressed; {count:,} splats need {expect:,}")
        if at + packed > len(buf):
            raise SpzError(name, f"truncated: stream {i} ends at byte {at + packed:,} of {len(buf):,}")
        if expect > MAX_ZSTD_RATIO * max(packed, 1):
            raise SpzError(name, f"stream {i}: {packed:,} compressed bytes cannot hold {expect:,}")
        try:
            out = zstandard.ZstdDecompressor().decompress(bytes(buf[at:at + packed]), max_output_size=expect)
        except zstandard.ZstdError as exc:
            raise SpzError(name, f"broken zstd stream {i}: {exc}") from None
        if len(out) != expect:
            raise SpzError(name, f"stream {i} decompressed to {len(out):,} bytes, expected {expect:,}")
        blocks.append(out)
        at += packed
    return (version, count, degree, frac, flags), blocks


def _rotations(raw: np.ndarray, version: int) -> np.ndarray:
    """(N, 4) w, x, y, z from v2's three bytes or v3's smallest-three word."""
    n = len(raw) // (3 if version == 2 else 4)
    if version == 2:
        xyz = raw.reshape(n, 3).astype(np.float64) / 127.5 - 1.0
        w = np.sqrt(np.maximum(0.0, 1.0 - (xyz[:, 0] * xyz[:, 0] + xyz[:, 1] * xyz[:, 1] + xyz[:, 2] * xyz[:, 2])))
        return np.concatenate([w[:, None], xyz], axis=1).astype(np.float32)
    word = raw.view("<u4").astype(np.uint32)
    largest = (word >> np.uint32(30)).astype(np.intp)
    xyzw = np.zeros((n, 4), np.float64)
    rows = np.arange(n)
    sum_sq = np.zeros(n)
    shift = 0
    # the three kept components are stored from the last index down, 10 bits each (9 magnitude, 1 sign)
    slot = np.full(n, 3, np.intp)
    for _ in range(3):
        slot = np.where(slot == largest, slot - 1, slot)
        bits = word >> np.uint32(shift)
        mag = (bits & np.uint32(511)).astype(np.float64)
        neg = ((bits >> np.uint32(9)) & np.uint32(1)).astype(bool)
        v = np.sqrt(0.5) * mag / 511.0
        v = np.where(neg, -v, v)
        xyzw[rows, slot] = v
        sum_sq += v * v
        shift += 10
        slot = slot - 1
    xyzw[rows, largest] = np.sqrt(np.maximum(0.0, 1.0 - sum_sq))
    return xyzw[:, [3, 0, 1, 2]].astype(np.float32)


def read_spz(source: Source, name: str | None = None, check: bool = True) -> Splats:
    """Read a `.spz` (path or bytes) into `Splats`; raises `SpzError` on any malformed input."""
    buf, name = load(source, name, SpzError)
    if len(buf) >= 2 and buf[0] == 0x1F and buf[1] == 0x8B:
        data = _gunzip(buf, name)
        version, count, degree, frac, _ = _header(data[:16], name)
        sizes = block_sizes(count, degree, version)
        blocks, at = [], 16
        for size in sizes:
            blocks.append(data[at:at + size])
            at += size
    else:
        if len(buf) < 16:
            raise SpzError(name, f"truncated: {len(buf)} bytes, shorter than any SPZ header")
        head = _header(bytes(buf[:16]), name)
        if head[0] < 4:
            raise SpzError(name, f"SPZ version {head[0]} must be gzip-compressed, and this file is not")
        (version, count, degree, frac, _), blocks = _zstd_blocks(buf, name)
    n = count
    pos = np.frombuffer(blocks[0], np.uint8).reshape(n * 3, 3).astype(np.int32)
    fixed = pos[:, 0] | (pos[:, 1] << 8) | (pos[:, 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    means = (fixed.astype(np.float64) * (1.0 / (1 << frac))).astype(np.float32).reshape(n, 3)
    alpha = np.frombuffer(blocks[1], np.uint8).astype(np.float64) / 255.0
    alpha = np.clip(alpha, 1e-6, 1 - 1e-6)
    opacity = np.log(alpha / (1 - alpha)).astype(np.float32)
    f_dc = ((np.frombuffer(blocks[2], np.uint8).astype(np.float64) / 255.0 - 0.5) / COLOR_SCALE)
    log_scales = np.frombuffer(blocks[3], np.uint8).astype(np.float64) / 16.0 - 10.0
    quats = _rotations(np.frombuffer(blocks[4], np.uint8), version)
    f_rest = np.zeros((n, 0), np.float32)
    if degree:
        k = SH_BYTES[degree] // 3
        sh = (np.frombuffer(blocks[5], np.uint8).astype(np.float32) - 128.0) / 128.0
        f_rest = np.ascontiguousarray(sh.reshape(n, k, 3).transpose(0, 2, 1).reshape(n, 3 * k))
    splats = Splats(means=means, quats=quats, log_scales=log_scales.astype(np.float32).reshape(n, 3),
                    f_dc=f_dc.astype(np.float32).reshape(n, 3), opacity=opacity, f_rest=f_rest)
    return finish(splats, name, SpzError, check)
