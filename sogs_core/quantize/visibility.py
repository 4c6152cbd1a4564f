"""Splats no viewer can show: those stored with opacity byte 0.

Every renderer multiplies a splat's colour by its opacity, so a splat whose stored opacity is 0
adds nothing to any picture while it still costs its texels in every image. Below
`--quality 100` they are not written (`quality.drop_invisible`); 100 keeps every splat, as its
contract says. They are left out after quantizing, not before: the codebooks are fitted with
them, so the splats written are stored exactly as they would have been (leaving them out of the
fits moved donut's colour and scale levels and cost it 0.36 dB; bench/NOTES.md, session 21).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from sogs_core.quantize.quality import drop_invisible


def visible_rows(opacity_bytes: np.ndarray, quality: int) -> Optional[np.ndarray]:
    """Indices of the splats to write at `quality`, those whose stored opacity byte is above 0;
    None when every splat is written: at level 100, when none is at 0, and when all are (no
    viewer loads a SOG of zero splats)."""
    if not drop_invisible(quality):
        return None
    keep = np.asarray(opacity_bytes) > 0
    if keep.all() or not keep.any():
        return None
    return np.flatnonzero(keep)


__all__ = ["visible_rows"]
