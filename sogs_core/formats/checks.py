"""The last step of every reader: saturated values made finite, everything else non-finite refused.

Trained scenes really hold +-inf opacity logits (fully opaque splats in SuperSplat exports, an
opacity byte of 0 or 255 in compressed PLY) and -inf log-scales (flat splats, zero scales in
`.splat`); their meaning is clear, so they become finite values that quantize to the same bytes.
NaN, or inf anywhere else, is a broken file: the error names every bad attribute, its count and
first splat; with `--invalid drop` those splats are removed instead (`drop_invalid`). Every
reader also refuses a count above the scene cap before allocating (`need_count`).
"""
from __future__ import annotations

import os

import numpy as np

from sogs_core.model.errors import SceneTooLarge, SplatFileError
from sogs_core.model.splats import ATTRIBUTES, Splats
from sogs_core.formats.row_blocks import all_finite

#: +-inf opacity logits become +-this (sigmoid within 2e-9 of 0 or 1: the same opacity byte)
OPACITY_LOGIT_LIMIT = 20.0
#: -inf log-scales (a flat axis) become this (exp(-30) ~ 1e-13 scene units)
FLAT_LOG_SCALE = -30.0
#: the most splats a scene read whole may hold (about 24 GB of SH3 floats) unless the environment
#: variable SOGS_MAX_SPLATS says otherwise (`--max-scene-splats` sets it); a larger PLY can still
#: be written as a streamed SOG, which reads it by ranges
DEFAULT_MAX_SPLATS = 100_000_000
MAX_SPLATS_VARIABLE = "SOGS_MAX_SPLATS"


def max_scene_splats() -> int:
    """The cap in force: SOGS_MAX_SPLATS when set (a positive integer), else DEFAULT_MAX_SPLATS."""
    text = os.environ.get(MAX_SPLATS_VARIABLE, "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"{MAX_SPLATS_VARIABLE}={text!r} is not a positive integer")
        return value
    return DEFAULT_MAX_SPLATS


def set_max_scene_splats(count: int) -> None:
    """The cap for this process (and what it starts): --max-scene-splats."""
    os.environ[MAX_SPLATS_VARIABLE] = str(count)


def need_count(name: str, count: int) -> None:
    """Refuse a scene whose header claims more splats than the cap, before anything is allocated
    (`SceneTooLarge`, in every format: a re-run with a higher cap must not see it as bad input)."""
    cap = max_scene_splats()
    if count > cap:
        raise SceneTooLarge(name, f"{count:,} splats: more than the {cap:,} a scene read whole may hold "
                          f"(--max-scene-splats or {MAX_SPLATS_VARIABLE} raise it; a PLY can be written as a "
                          "streamed SOG, which reads it by ranges)")


def finish(splats: Splats, name: str, error=SplatFileError, check: bool = True) -> Splats:
    """`splats` with saturated values clamped in place; raises `error` for NaN, other infs and
    zero-length rotations. `check=False` (`--invalid drop`): the values as they are, for
    `drop_invalid` to remove the invalid splats first and `finish` to run after it."""
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


# -- --invalid drop: splat-transform's -N rule, so the same splats go ------------------------------
# A splat is invalid when a position, rotation, f_dc or f_rest value is not finite, its four
# rotation values are all zero, a log-scale is NaN or +inf, or its opacity logit is NaN or -inf.
# A log-scale of -inf (a flat axis) and an opacity of +inf (fully opaque) have a clear meaning and
# are kept (`finish` makes them finite).

def invalid_rows(splats: Splats) -> np.ndarray:
    """(N,) True where a splat is invalid (the rule above)."""
    n = splats.count
    bad = ~np.isfinite(splats.means).all(1) | ~np.isfinite(splats.quats).all(1)
    bad |= (splats.quats == 0).all(1)
    bad |= np.isnan(splats.log_scales).any(1) | np.isposinf(splats.log_scales).any(1)
    bad |= np.isnan(splats.opacity) | np.isneginf(splats.opacity)
    bad |= ~np.isfinite(splats.f_dc).all(1)
    if splats.f_rest.shape[1]:
        bad |= ~np.isfinite(splats.f_rest.reshape(n, -1)).all(1)
    return bad


def drop_invalid(splats: Splats) -> tuple[Splats, int]:
    """(the valid splats in their order, how many were dropped)."""
    bad = invalid_rows(splats)
    dropped = int(bad.sum())
    return (splats.take(np.flatnonzero(~bad)) if dropped else splats), dropped
