"""Processes the streamed writer starts end when the process that started them dies.

Why: a writing process left behind by a killed writer (SIGKILL, a stopped Ray actor, an
out-of-memory kill) waits forever for work, or for a reader of its last message, holding its
host memory and, on a GPU, its device memory and context. A writing process watches the writer
itself (multiprocessing's sentinel: a pipe whose other end only the writer holds, closed by
the kernel when it dies): Linux's PR_SET_PDEATHSIG follows the process that forked it, which
for a process forked by the process server (`pipeline.process_server`) is that server, and the
server outlives the writer for as long as its forks hold its pipe open. The MPS daemon, a child
the writer starts itself, gets the death signal.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import threading
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


def end_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Called first thing in a started process: `sig` to it once the writer that asked for it
    is gone (a thread waits on the writer's sentinel), and if the writer is gone already (it
    died before this call), exit now. False in a process that multiprocessing did not start
    (nothing to watch)."""
    writer = multiprocessing.parent_process()
    if writer is None:
        return False
    if not writer.is_alive():
        os._exit(1)

    def watch() -> None:
        writer.join()
        os.kill(os.getpid(), sig)

    threading.Thread(target=watch, name="sogs-writer-watch", daemon=True).start()
    return True
