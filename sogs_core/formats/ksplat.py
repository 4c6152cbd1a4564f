"""`.ksplat` (mkkellogg's GaussianSplats3D viewer), compression modes 0, 1 and 2.

A 4096-byte main header (version 0.1+, section count, splat count, compression mode, SH value
range), one 1024-byte header per section, then each section's bucket table and splat records.
Mode 0 stores floats; modes 1 and 2 store positions as 16-bit offsets from their bucket's centre,
scales and rotations as float16, SH as float16 (mode 1) or as bytes over the header's SH range
(mode 2); colour and opacity are bytes in every mode. Scales are linear (non-positive ones become
log-scale -10, as splat-transform reads them). SH is stored band by band, each band channel-major;
we follow splat-transform's reader, the reference our tests compare against.

Every section's counts and sizes are checked against the file before any array is allocated.
"""
from __future__ import annotations

import struct

import numpy as np

from sogs_core.model.errors import SplatFileError
from sogs_core.model.splats import Splats
from sogs_core.formats.checks import finish, need_count
from sogs_core.formats.source import Source, load

MAIN_HEADER = 4096
SECTION_HEADER = 1024
SH_C0 = 0.28209479177387814
SH_VALUES = (0, 9, 24, 45)
#: per mode: bytes of centre, scale, rotation, colour, one SH value; default quantization range
MODES = {0: (12, 12, 16, 4, 4, 1), 1: (6, 6, 8, 4, 2, 32767), 2: (6, 6, 8, 4, 1, 32767)}


class KsplatError(SplatFileError):
    """A `.ksplat` file that cannot be read."""


def _sh_columns(count: int, per_channel: int) -> np.ndarray:
    """For stored SH value i of `count` (band by band, channel-major in each band), its column in
    an f_rest of `per_channel` coefficients per channel (a section may hold fewer bands than the
    file's highest)."""
    cols = []
    for i in range(count):
        if i < 9:
            channel, coeff = i // 3, i % 3
        elif i < 24:
            channel, coeff = (i - 9) // 5, (i - 9) % 5 + 3
        else:
            channel, coeff = (i - 24) // 7, (i - 24) % 7 + 8
        cols.append(channel * per_channel + coeff)
    return np.array(cols)


def _sections(buf: memoryview, name: str, n_sections: int, mode: int) -> list[dict]:
    """Every section's layout, each checked to lie inside the file."""
    centre, scale, rot, colour, sh_bytes, default_range = MODES[mode]
    at = MAIN_HEADER + n_sections * SECTION_HEADER
    if at > len(buf):
        raise KsplatError(name, f"truncated: {n_sections} section headers need {at:,} bytes, the file has {len(buf):,}")
    out = []
    for s in range(n_sections):
        h = MAIN_HEADER + s * SECTION_HEADER
        count, capacity_splats, bucket_cap, n_buckets = struct.unpack_from("<IIII", buf, h)
        block = struct.unpack_from("<f", buf, h + 16)[0]
        bucket_bytes = struct.unpack_from("<H", buf, h + 20)[0]
        qrange = struct.unpack_from("<I", buf, h + 24)[0] or default_range
        full, partial = struct.unpack_from("<II", buf, h + 32)
        degree = struct.unpack_from("<H", buf, h + 40)[0]
        if degree > 3:
            raise KsplatError(name, f"section {s}: SH degree {degree} (0..3 supported)")
        if count > capacity_splats:
            raise KsplatError(name, f"section {s}: {count} splats exceed its capacity {capacity_splats}")
        record = centre + scale + rot + colour + SH_VALUES[degree] * sh_bytes
        table = bucket_bytes * n_buckets + 4 * partial
        data = record * capacity_splats
        if at + table + data > len(buf):
            raise KsplatError(name, f"truncated: section {s} ends at byte {at + table + data:,}, the file has {len(buf):,}")
        if mode and full * bucket_cap > capacity_splats:     # checked before any array is sized by it
            raise KsplatError(name, f"section {s}: {full} full buckets of {bucket_cap:,} splats exceed its "
                                    f"capacity of {capacity_splats:,}")
        if mode and count and (n_buckets < full + partial or bucket_bytes < 12):
            raise KsplatError(name, f"section {s}: {n_buckets} buckets of {bucket_bytes} bytes for "
                                    f"{full} full and {partial} partial buckets")
        out.append(dict(count=count, bucket_cap=bucket_cap, n_buckets=n_buckets, block=block,
                        bucket_bytes=bucket_bytes, qrange=qrange, full=full, partial=partial, degree=degree,
                        record=record, start=at, table=table))
        at += table + data
    return out


def read_ksplat(source: Source, name: str | None = None, check: bool = True) -> Splats:
    """Read a `.ksplat` (path or bytes) into `Splats`; raises `KsplatError` on malformed input."""
    buf, name = load(source, name, KsplatError)
    if len(buf) < MAIN_HEADER:
        raise KsplatError(name, f"truncated: {len(buf):,} bytes, the main header alone is {MAIN_HEADER}")
    major, minor = buf[0], buf[1]
    if major != 0 or minor < 1:
        raise KsplatError(name, f"unsupported .ksplat version {major}.{minor} (0.1 and later 0.x are read)")
    n_sections, total = struct.unpack_from("<I", buf, 4)[0], struct.unpack_from("<I", buf, 16)[0]
    mode = struct.unpack_from("<H", buf, 20)[0]
    sh_lo, sh_hi = struct.unpack_from("<ff", buf, 36)
    sh_lo, sh_hi = sh_lo or -1.5, sh_hi or 1.5
    if mode not in MODES:
        raise KsplatError(name, f"unknown compression mode {mode} (0, 1 or 2)")
    need_count(name, total)
    if total == 0:
        raise KsplatError(name, "zero splats")
    sections = _sections(buf, name, n_sections, mode)
    if sum(s["count"] for s in sections) != total:
        raise KsplatError(name, f"header claims {total:,} splats, its sections hold {sum(s['count'] for s in sections):,}")
    degree = max((s["degree"] for s in sections if s["count"]), default=0)
    centre, scale_b, rot_b, colour_b, sh_b, _ = MODES[mode]
    means = np.empty((total, 3), np.float32)
    log_scales = np.empty((total, 3), np.float32)
    quats = np.empty((total, 4), np.float32)
    f_dc = np.empty((total, 3), np.float32)
    opacity = np.empty(total, np.float32)
    f_rest = np.zeros((total, SH_VALUES[degree]), np.float32)
    row = 0
    for i, s in enumerate(sections):
        n = s["count"]
        if not n:
            continue
        data_at = s["start"] + s["table"]
        rec = np.frombuffer(buf, np.uint8, count=n * s["record"], offset=data_at).reshape(n, s["record"])
        ftype = "<f4" if mode == 0 else "<f2"

        def field(at: int, width: int, dtype: str) -> np.ndarray:
            return np.ascontiguousarray(rec[:, at:at + width]).view(dtype).astype(np.float64)

        if mode == 0:
            pos = field(0, 12, "<f4")
        else:
            sizes = np.concatenate([np.full(s["full"], s["bucket_cap"], np.int64),
                                    np.frombuffer(buf, "<u4", count=s["partial"], offset=s["start"]).astype(np.int64)])
            if sizes.sum() < n:
                raise KsplatError(name, f"section {i}: buckets hold {int(sizes.sum())} splats, the section {n}")
            bucket = np.searchsorted(np.cumsum(sizes), np.arange(n), side="right")
            centres = np.frombuffer(buf, "<f4", count=3 * s["n_buckets"],
                                    offset=s["start"] + 4 * s["partial"]).reshape(-1, 3).astype(np.float64)
            step = s["block"] / 2.0 / s["qrange"]
            pos = (field(0, 6, "<u2") - s["qrange"]) * step + centres[bucket]
        scales = field(centre, scale_b, ftype)
        rots = field(centre + scale_b, rot_b, ftype)
        c = rec[:, centre + scale_b + rot_b:centre + scale_b + rot_b + 4].astype(np.float64)
        sl = slice(row, row + n)
        means[sl] = pos
        with np.errstate(divide="ignore"):
            log_scales[sl] = np.where(scales > 0, np.log(np.where(scales > 0, scales, 1.0)), -10.0)
        quats[sl] = rots
        f_dc[sl] = (c[:, :3] / 255.0 - 0.5) / SH_C0
        a = np.clip(c[:, 3] / 255.0, 1e-6, 1 - 1e-6)
        opacity[sl] = np.log(a / (1 - a))
        k = SH_VALUES[s["degree"]]
        if k:
            at = centre + scale_b + rot_b + colour_b
            if mode == 2:
                vals = sh_lo + rec[:, at:at + k].astype(np.float64) / 255.0 * (sh_hi - sh_lo)
            else:
                vals = field(at, k * sh_b, ftype)
            f_rest[sl, _sh_columns(k, f_rest.shape[1] // 3)] = vals
        row += n
    splats = Splats(means=means, quats=quats, log_scales=log_scales, f_dc=f_dc, opacity=opacity, f_rest=f_rest)
    return finish(splats, name, KsplatError, check)
