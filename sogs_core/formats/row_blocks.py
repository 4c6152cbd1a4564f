"""Big array passes split into row blocks on a few threads: the reader's column copies and its
finiteness checks.

Why: numpy releases the GIL inside copies and ufunc loops, and each column of a large PLY must
be copied out once, most of the read stage (the first touch of the new pages is most of the
cost); row blocks on a few threads cut it several-fold (bench/NOTES.md). Small arrays take one
call.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import numpy as np

#: rows below this are one block: a thread hand-off costs more than it saves
MIN_BLOCK_ROWS = 1 << 16
_POOL: Optional[ThreadPoolExecutor] = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2), thread_name_prefix="sogs-read")
        return _POOL


def blocks(n: int) -> list[tuple[int, int]]:
    """Row ranges covering 0..n, as many as the pool has threads (one when n is small)."""
    parts = max(1, min(_pool()._max_workers, n // MIN_BLOCK_ROWS))
    edges = [n * i // parts for i in range(parts + 1)]
    return [(edges[i], edges[i + 1]) for i in range(parts)]


def contiguous_float32(src: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 copy of `src` (any strides, any real dtype), made by row blocks."""
    out = np.empty(src.shape, np.float32)
    ranges = blocks(len(src))
    if len(ranges) == 1:
        np.copyto(out, src, casting="unsafe")
        return out
    list(_pool().map(lambda r: np.copyto(out[r[0]:r[1]], src[r[0]:r[1]], casting="unsafe"), ranges))
    return out


def all_finite(a: np.ndarray) -> bool:
    """True when no element of `a` is NaN or +-inf (checked by row blocks)."""
    ranges = blocks(len(a))
    if len(ranges) == 1:
        return bool(np.isfinite(a).all())
    return all(_pool().map(lambda r: bool(np.isfinite(a[r[0]:r[1]]).all()), ranges))
