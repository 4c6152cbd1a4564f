"""The CLI process's start: torch imported with the cyclic garbage collector paused.

Importing torch makes a few hundred thousand objects that live as long as the process. The
collector would sweep them again and again while they are made and once more at exit, which
costs a short command a sizeable share of its wall time (bench/NOTES.md, session 33). Freezing
them moves them out of every later sweep; nothing the command makes afterwards is affected.
"""
from __future__ import annotations

import gc
import sys


def import_torch_frozen() -> None:
    """Import torch and freeze what the process holds by then; a no-op where torch is already
    imported (a test or a host that calls `main` in its own process keeps its collector as it is)."""
    if "torch" in sys.modules:
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        import torch  # noqa: F401
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
