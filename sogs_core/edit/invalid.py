"""Splats no viewer can draw: found with splat-transform's `-N` rule, so `--invalid drop`
removes exactly what it removes.

A splat is invalid when a position, rotation, f_dc or f_rest value is not finite, its four
rotation values are all zero, a log-scale is NaN or +inf, or its opacity logit is NaN or -inf.
A log-scale of -inf (a flat axis) and an opacity of +inf (fully opaque) have a clear meaning
and are kept (the reader's last step, `formats.checks.finish`, makes them finite).
"""
from __future__ import annotations

import numpy as np

from sogs_core.model.splats import Splats


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
