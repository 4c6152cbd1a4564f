"""Writers of `.splat` and `.ksplat` test fixtures (splat-transform reads these formats but writes
neither). Written from the formats' layouts independently of our readers; the tests compare what
our readers decode from these files with what splat-transform decodes from the same bytes."""
from __future__ import annotations

import struct

import numpy as np

from sogs_core.model.splats import Splats

SH_C0 = 0.28209479177387814


def _colour_bytes(s: Splats) -> np.ndarray:
    rgb = np.clip(np.round((0.5 + SH_C0 * s.f_dc.astype(np.float64)) * 255), 0, 255)
    a = np.clip(np.round(255 / (1 + np.exp(-s.opacity.astype(np.float64)))), 0, 255)
    return np.concatenate([rgb, a[:, None]], axis=1).astype(np.uint8)


def splat_bytes(s: Splats) -> bytes:
    """antimatter15 .splat: pos f32 x3, linear scale f32 x3, RGBA u8, rotation u8 x4 (w first)."""
    rec = np.zeros(s.count, np.dtype([("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)]))
    rec["pos"] = s.means
    rec["scale"] = np.exp(s.log_scales)
    rec["rgba"] = _colour_bytes(s)
    q = s.quats / np.linalg.norm(s.quats, axis=1, keepdims=True)
    rec["rot"] = np.clip(np.round((q + 1) / 2 * 255), 0, 255)
    return rec.tobytes()


def _sh_stored(f_rest: np.ndarray) -> np.ndarray:
    """f_rest (channel-major) -> .ksplat's order: band 1 (3 coefficients) for R, G, B, then band 2
    (5) for R, G, B, then band 3 (7)."""
    n, k = f_rest.shape[0], f_rest.shape[1] // 3
    per = f_rest.reshape(n, 3, k)
    parts, start = [], 0
    for width in (3, 5, 7):
        if start + width > k:
            break
        parts.append(per[:, :, start:start + width].reshape(n, 3 * width))
        start += width
    return np.concatenate(parts, axis=1) if parts else np.zeros((n, 0))


def ksplat_bytes(s: Splats, mode: int, sections: int = 1, bucket_capacity: int = 64,
                 sh_range: tuple[float, float] = (-1.5, 1.5)) -> bytes:
    """A .ksplat (version 0.1) of `sections` sections in compression mode 0, 1 or 2; the last bucket
    of each section is partial when the section's count is not a multiple of the capacity."""
    degree = (0, 3, 8, 15).index(s.sh_coeffs)
    n_sh = (0, 9, 24, 45)[degree]
    bounds = np.linspace(0, s.count, sections + 1).astype(int)
    main = bytearray(4096)
    main[0], main[1] = 0, 1
    struct.pack_into("<I", main, 4, sections)
    struct.pack_into("<I", main, 16, s.count)
    struct.pack_into("<H", main, 20, mode)
    struct.pack_into("<ff", main, 36, *sh_range)
    headers, bodies = bytearray(), bytearray()
    fdt = "<f4" if mode == 0 else "<f2"
    qrange = 32767
    for a, b in zip(bounds[:-1], bounds[1:]):
        n = int(b - a)
        pos = s.means[a:b].astype(np.float64)
        n_full, rest = divmod(n, bucket_capacity)
        sizes = [bucket_capacity] * n_full + ([rest] if rest else [])
        bucket = np.repeat(np.arange(len(sizes)), sizes)
        centres = np.zeros((len(sizes), 3))
        half = 1e-6
        for i in range(len(sizes)):
            p = pos[bucket == i]
            lo, hi = p.min(0), p.max(0)
            centres[i] = (lo + hi) / 2
            half = max(half, float(((hi - lo) / 2).max()))
        block = np.float32(2 * half * 1.001)
        h = bytearray(1024)
        struct.pack_into("<IIII", h, 0, n, n, bucket_capacity, len(sizes))
        struct.pack_into("<f", h, 16, block)
        struct.pack_into("<H", h, 20, 12)
        struct.pack_into("<I", h, 24, qrange)
        struct.pack_into("<II", h, 32, n_full, 1 if rest else 0)
        struct.pack_into("<H", h, 40, degree)
        headers += h
        table = (struct.pack("<I", rest) if rest else b"") + centres.astype("<f4").tobytes()
        cols = []
        if mode == 0:
            cols.append(pos.astype("<f4").view(np.uint8).reshape(n, -1))
        else:
            step = float(block) / 2.0 / qrange
            c32 = centres.astype(np.float32).astype(np.float64)[bucket]
            u = np.clip(np.round((pos - c32) / step + qrange), 0, 65535).astype("<u2")
            cols.append(u.view(np.uint8).reshape(n, -1))
        cols.append(np.exp(s.log_scales[a:b].astype(np.float64)).astype(fdt).view(np.uint8).reshape(n, -1))
        cols.append(s.quats[a:b].astype(fdt).view(np.uint8).reshape(n, -1))
        cols.append(_colour_bytes(s.take(np.arange(a, b))))
        if n_sh:
            sh = _sh_stored(s.f_rest[a:b].astype(np.float64))
            if mode == 2:
                lo, hi = sh_range
                cols.append(np.clip(np.round((sh - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8))
            else:
                cols.append(sh.astype(fdt).view(np.uint8).reshape(n, -1))
        bodies += table + np.concatenate(cols, axis=1).tobytes()
    return bytes(main + headers + bodies)


def spz_v2_bytes(s: Splats, fractional_bits: int = 12) -> bytes:
    """SPZ version 2 (splat-transform writes only 3 and 4): gzip of a 16-byte header and the
    attribute blocks, rotations as three bytes (x, y, z of the quaternion with w >= 0)."""
    import gzip

    degree = (0, 3, 8, 15).index(s.sh_coeffs)
    n = s.count
    fixed = np.round(s.means.astype(np.float64) * (1 << fractional_bits)).astype(np.int64) & 0xFFFFFF
    pos = np.stack([fixed & 0xFF, (fixed >> 8) & 0xFF, (fixed >> 16) & 0xFF], axis=-1).astype(np.uint8)
    alpha = np.clip(np.round(255 / (1 + np.exp(-s.opacity.astype(np.float64)))), 0, 255).astype(np.uint8)
    colour = np.clip(np.round((s.f_dc.astype(np.float64) * 0.15 + 0.5) * 255), 0, 255).astype(np.uint8)
    scale = np.clip(np.round((s.log_scales.astype(np.float64) + 10) * 16), 0, 255).astype(np.uint8)
    q = s.quats / np.linalg.norm(s.quats, axis=1, keepdims=True)
    q = q * np.where(q[:, :1] < 0, -1.0, 1.0)
    rot = np.clip(np.round((q[:, 1:] + 1) * 127.5), 0, 255).astype(np.uint8)
    sh = s.f_rest.reshape(n, 3, -1).transpose(0, 2, 1).reshape(n, -1)     # coefficient-major, RGB inside
    sh = np.clip(np.round(sh.astype(np.float64) * 128 + 128), 0, 255).astype(np.uint8)
    header = struct.pack("<IIIBBBB", 0x5053474E, 2, n, degree, fractional_bits, 0, 0)
    return gzip.compress(header + pos.tobytes() + alpha.tobytes() + colour.tobytes() + scale.tobytes()
                         + rot.tobytes() + sh.tobytes())
