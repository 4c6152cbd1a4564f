"""Where the streamed writer's processes (`streamed.processes.WritingProcesses`) come from: a
fork server (multiprocessing's "forkserver") that has imported torch and the library once, so
that each writing process starts as a fork of that warm interpreter instead of a fresh one
importing torch for seconds of its own (three at once on the device's machine: ready 3.2-4.5 s
after they were started, while the plan takes 1.6 s: bench/NOTES.md, session 44).

Kept free of torch so that a caller that knows it will want several writing processes (the
CLI's streamed compress) starts the server first thing (`start_early`), and its imports run
beside the caller's own. Where the platform has no fork server the processes are spawned.
"""
from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext

#: what the server imports before it forks anything (the writing process's own modules); never
#: anything that touches CUDA, which a forked child could not use
PRELOAD = ("sogs_core.pipeline.streamed.processes", "sogs_core.pipeline.compressor")


def writers_context() -> BaseContext:
    """The multiprocessing context the writing processes are started from: the fork server,
    with PRELOAD imported in it, or spawn where there is none."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))
    return ctx


def start_early() -> None:
    """Start the fork server now (it imports while the caller goes on; idempotent), so that the
    writing processes a later `write_streamed` starts are forked at once."""
    if writers_context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()
