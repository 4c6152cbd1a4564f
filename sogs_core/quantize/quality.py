"""What `--quality` (0..100, cwebp's convention) trades: which levers each level pulls.

100 keeps the format's tightest contract (nearest codes everywhere). Below it the low bits of
the 16-bit positions are dropped, one more bit per 10 points under 100 (at most 4): the low
position bytes are the least compressible image of a SOG, and the measured render cost of a
coarser position grid is the smallest of the levers tried (bench/NOTES.md, session 17).
"""
from __future__ import annotations

MAX_POSITION_DROP_BITS = 4


def position_drop_bits(quality: int) -> int:
    """Low bits of each 16-bit position code left at zero: 0 at 100, 1 at 91-99, 2 at 81-90, ..."""
    if not 0 <= quality <= 100:
        raise ValueError(f"--quality must be 0..100, not {quality}")
    return min(MAX_POSITION_DROP_BITS, (100 - quality + 9) // 10)


def position_bound_steps(quality: int) -> float:
    """The largest position error the level allows, in 16-bit steps (0.5 at 100)."""
    return 0.5 * (1 << position_drop_bits(quality))
