"""antimatter15 `.splat` (web viewers): no header, 32 bytes per splat.

Record: position 3 x float32, scale 3 x float32 (linear, not log), colour RGBA u8 (RGB = 0.5 +
SH_C0 x DC, A = opacity after the sigmoid), rotation 4 x u8 (w, x, y, z mapped from [-1, 1]).
No SH bands. With no magic, a file is taken as `.splat` only by its extension; its length must
be a multiple of 32.
"""
from __future__ import annotations

import numpy as np

from sogs_core.model.errors import SplatFileError
from sogs_core.model.splats import Splats
from sogs_core.formats.checks import finish, need_count
from sogs_core.formats.source import Source, load

RECORD = np.dtype([("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
SH_C0 = 0.28209479177387814


class SplatError(SplatFileError):
    """A `.splat` file that cannot be read."""


def read_splat(source: Source, name: str | None = None, check: bool = True) -> Splats:
    """Read a `.splat` (path or bytes) into `Splats`; raises `SplatError` on malformed input."""
    buf, name = load(source, name, SplatError)
    if len(buf) == 0:
        raise SplatError(name, "empty file (zero splats)")
    if len(buf) % RECORD.itemsize:
        raise SplatError(name, f"{len(buf):,} bytes is not a whole number of 32-byte .splat records "
                               "(truncated, or not a .splat file)")
    need_count(name, len(buf) // RECORD.itemsize)
    rec = np.frombuffer(buf, RECORD)
    rot = rec["rot"].astype(np.float64) / 255.0 * 2.0 - 1.0
    r0, r1, r2, r3 = rot.T
    length = np.sqrt(r0 * r0 + r1 * r1 + r2 * r2 + r3 * r3)[:, None]
    quats = np.where(length > 0, rot / np.where(length > 0, length, 1.0), np.array([1.0, 0.0, 0.0, 0.0]))
    scale = rec["scale"].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        # a zero scale is a flat axis (log -inf, made finite by `finish`); a negative one is broken
        log_scales = np.where(scale >= 0, np.log(np.maximum(scale, 0.0)), np.nan)
    rgba = rec["rgba"].astype(np.float64) / 255.0
    alpha = np.clip(rgba[:, 3], 1e-6, 1 - 1e-6)
    splats = Splats(means=np.ascontiguousarray(rec["pos"], dtype=np.float32),
                    quats=quats.astype(np.float32), log_scales=log_scales.astype(np.float32),
                    f_dc=((rgba[:, :3] - 0.5) / SH_C0).astype(np.float32),
                    opacity=np.log(alpha / (1 - alpha)).astype(np.float32))
    return finish(splats, name, SplatError, check)
