"""The C allocator's thresholds for this process: freed blocks kept for the next allocation.

Why: glibc maps every block above its mmap threshold (128 KiB at first, at most 32 MiB as it
adapts) afresh from the kernel and unmaps it on free, and trims the heap's free top once it
passes the trim threshold, so a compressor that allocates and frees the same tensors scene
after scene (a decimation pass, an image, a column) pays the kernel's page faults and zeroing
again for every one. Keeping them mapped takes that cost off the CPU path's decimation
(bench/NOTES.md, session 43). What stays mapped is at most what the process held at its peak.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from typing import Optional

#: mallopt's parameter numbers (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: blocks below this many bytes come from the heap (and stay mapped there once freed)
MMAP_THRESHOLD = 256 << 20
#: the heap's free top is given back to the kernel only above this many bytes
TRIM_THRESHOLD = 1 << 30

_set: Optional[bool] = None


def keep_freed_blocks() -> bool:
    """Raise this process's mmap and trim thresholds (once; later calls return the first
    answer). False where the C library has no `mallopt` (not glibc) or refuses: nothing
    changes then."""
    global _set
    if _set is None:
        _set = _mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and _mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return _set


def _mallopt(param: int, value: int) -> bool:
    """glibc's mallopt(param, value) (the value a C int); False where there is none."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt(param, value) == 1
