"""Splats no viewer can show: those stored with opacity byte 0.

Every renderer multiplies a splat's colour by its opacity, so a splat whose stored opacity is 0
adds nothing to any picture while it still costs its texels in every image. Below
`--quality 100` they are not written (`quality.drop_invisible`); 100 keeps every splat, as its
contract says. They are left out after quantizing, not before: the codebooks are fitted with
them, so the splats written are stored exactly as they would have been (leaving them out of the
fits moved donut's colour and scale levels and cost it 0.36 dB; bench/NOTES.md, session 21).
A streamed SOG's files hold runs of splats, one per leaf of its chunk tree (`segments`), which
lod-meta.json addresses by offset and count: there each run keeps at least one splat.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from sogs_core.quantize.quality import drop_invisible


def _stored_visible(opacity_bytes: np.ndarray, quality: int) -> Optional[np.ndarray]:
    """Which splats are stored above opacity 0, or None when every splat is written anyway (at
    level 100, or none is at 0)."""
    if not drop_invisible(quality):
        return None
    keep = np.asarray(opacity_bytes) > 0
    return None if keep.all() else keep


def visible_rows(opacity_bytes: np.ndarray, quality: int) -> Optional[np.ndarray]:
    """Indices of the splats to write at `quality`, those whose stored opacity byte is above 0;
    None when every splat is written: at level 100, when none is at 0, and when all are (no
    viewer loads a SOG of zero splats)."""
    keep = _stored_visible(opacity_bytes, quality)
    if keep is None or not keep.any():
        return None
    return np.flatnonzero(keep)


def visible_rows_in_runs(opacity_bytes: np.ndarray, quality: int,
                         runs: list[int]) -> Optional[tuple[np.ndarray, list[int]]]:
    """`visible_rows` for splats that come as consecutive runs (a streamed file's leaves):
    (indices to write, splats written per run), or None when every splat is written. A run
    whose splats are all at opacity 0 keeps its first one, so that every leaf still has a run
    at every level (the viewer's index addresses each)."""
    keep = _stored_visible(opacity_bytes, quality)
    if keep is None:
        return None
    counts = np.asarray(runs, dtype=np.int64)
    run_of = np.repeat(np.arange(len(counts)), counts)
    emptied = (np.bincount(run_of[keep], minlength=len(counts)) == 0) & (counts > 0)
    keep[(np.cumsum(counts) - counts)[emptied]] = True
    rows = np.flatnonzero(keep)
    return rows, np.bincount(run_of[rows], minlength=len(counts)).tolist()


__all__ = ["visible_rows", "visible_rows_in_runs"]
