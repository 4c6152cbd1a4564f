"""Processes the streamed writer starts end when the process that started them dies.

Why: a writing process left behind by a killed writer (SIGKILL, a stopped Ray actor, an
out-of-memory kill) waits forever for work, or for a reader of its last message, holding its
host memory and, on a GPU, its device memory and context. Linux's PR_SET_PDEATHSIG sends a
signal when the starting thread ends; the writer starts its processes from the thread that
waits for them, so that thread lives as long as they are wanted.
"""
from __future__ import annotations

import ctypes
import os
import signal
from typing import Callable, Optional

#: prctl's option number (linux/prctl.h)
PR_SET_PDEATHSIG = 1


def _prctl() -> Optional[Callable]:
    """libc's prctl, or None where there is none (not Linux)."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def death_signal_for_exec(sig: int = signal.SIGTERM) -> Optional[Callable[[], None]]:
    """A `preexec_fn` for `subprocess.Popen`: `sig` to the child when the starting thread ends.
    Looked up here, not in the forked child, where a lock another thread held at the fork could
    stall it; None where there is no prctl."""
    prctl = _prctl()
    return None if prctl is None else (lambda: prctl(PR_SET_PDEATHSIG, sig))


def end_with_parent(parent_pid: int, sig: int = signal.SIGTERM) -> bool:
    """Called first thing in a started process: `sig` to it once `parent_pid` (the process that
    started it) is gone, and if it is gone already (it died before this call), exit now.
    False where there is no prctl (the process then outlives a killed parent, as before)."""
    prctl = _prctl()
    armed = prctl is not None and prctl(PR_SET_PDEATHSIG, sig) == 0
    if os.getppid() != parent_pid:
        os._exit(1)
    return armed
