"""The last step of every reader: saturated values made finite, everything else non-finite refused.

Trained scenes really hold +-inf opacity logits (fully opaque splats in SuperSplat exports, an
opacity byte of 0 or 255 in compressed PLY) and -inf log-scales (flat splats, zero scales in
`.splat`); their meaning is clear, so they become finite values that quantize to the same bytes.
NaN, or inf anywhere else, is a broken file: the error names the attribute and the first splat.
"""
from __future__ import annotations

import numpy as np

from sogs_core.model.errors import SplatFileError
from sogs_core.model.splats import ATTRIBUTES, Splats
from sogs_core.formats.row_blocks import all_finite

#: +-inf opacity logits become +-this (sigmoid within 2e-9 of 0 or 1: the same opacity byte)
OPACITY_LOGIT_LIMIT = 20.0
#: -inf log-scales (a flat axis) become this (exp(-30) ~ 1e-13 scene units)
FLAT_LOG_SCALE = -30.0


def finish(splats: Splats, name: str, error=SplatFileError, check: bool = True) -> Splats:
    """`splats` with saturated values clamped in place; raises `error` for NaN, other infs and
    zero-length rotations. `check=False` (`--invalid drop`): the values as they are, for
    `edit.invalid` to drop the invalid splats first and `finish` to run after it."""
    count = splats.count
    if count == 0:
        raise error(name, "zero splats")
    if not check:
        return splats
    np.clip(splats.opacity, -OPACITY_LOGIT_LIMIT, OPACITY_LOGIT_LIMIT, out=splats.opacity,
            where=np.isinf(splats.opacity))
    flat = np.isneginf(splats.log_scales)
    if flat.any():
        splats.log_scales[flat] = FLAT_LOG_SCALE
    found = []
    for attr in ATTRIBUTES:
        arr = getattr(splats, attr)
        if all_finite(arr):
            continue
        bad = ~np.isfinite(arr)
        if bad.any():
            rows = np.nonzero(bad.reshape(count, -1).any(1))[0]
            found.append(f"{attr} of {len(rows)} splats (first at splat {int(rows[0])})")
    if found:
        raise error(name, f"non-finite values (NaN or inf) in {'; '.join(found)} (--invalid drop removes them)")
    zero_rot = (splats.quats * splats.quats).sum(1) == 0
    if zero_rot.any():
        raise error(name, f"zero-length rotation quaternion in {int(zero_rot.sum())} splats "
                          f"(first at splat {int(np.argmax(zero_rot))}; --invalid drop removes them)")
    return splats


def need_bytes(name: str, what: str, need: int, have: int, error=SplatFileError) -> None:
    """Refuse a count before anything is allocated from it: `need` bytes must be present."""
    if need > have:
        raise error(name, f"truncated: {what} needs {need:,} bytes but only {have:,} are there")
