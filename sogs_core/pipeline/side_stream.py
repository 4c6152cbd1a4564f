"""Work beside the compressor's GPU stages: one thread (and one CUDA stream) for a Compressor's life.

Why a thread: work that does not depend on the next steps (the SH palette's k-means, the input's
renders for the render metric) is launched while the caller launches those steps; the GPU
stages are bound by launching kernels more than by running them. Why a stream of its own (the
palette): its kernels then overlap the caller's on the device. Why not always: the caching
allocator keeps freed blocks per stream, so a second stream holds a second pool; the metric's
renders on one grew a 1M SH3 compression's reserved memory from 12.2 to 18.9 GB on an H100
(bench/NOTES.md, session 25), so they run on the caller's stream and share its pool. Why one
stream for life: a new stream per scene grew the reserved memory scene after scene.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Optional, TypeVar

import torch

T = TypeVar("T")


class SideStream:
    """Runs callables on its own thread. On a CUDA device with `own_stream`, each inside its own
    stream, started after what the caller's stream has queued so far and finished on the device
    before its result is handed back; without, on the caller's stream (its kernels queue among
    the caller's in launch order, and its result is ready for the caller's later work)."""

    def __init__(self, name: str, own_stream: bool = True) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.own_stream = own_stream
        self._stream: Optional[torch.cuda.Stream] = None

    def submit(self, fn: Callable[[], T], device: torch.device) -> Future:
        """fn() on the side thread (on a GPU: on the side stream, or the caller's)."""
        if device.type != "cuda":
            return self._thread.submit(self.run_here, fn)
        caller = torch.cuda.current_stream(device)
        if not self.own_stream:
            return self._thread.submit(self._run_on, fn, caller)
        if self._stream is None:
            self._stream = torch.cuda.Stream(device)
        return self._thread.submit(self._run_aside, fn, caller.record_event())

    def _run_on(self, fn: Callable[[], T], stream: torch.cuda.Stream) -> T:
        with torch.cuda.stream(stream), torch.no_grad():
            return fn()

    def _run_aside(self, fn: Callable[[], T], ready: torch.cuda.Event) -> T:
        side = self._stream
        side.wait_event(ready)
        with torch.cuda.stream(side), torch.no_grad():
            out = fn()
            side.synchronize()
        return out

    def run_here(self, fn: Callable[[], T]) -> T:
        """fn() in the caller's thread and stream (a CPU, where a side thread would only compete
        for the same cores)."""
        with torch.no_grad():
            return fn()

    def close(self) -> None:
        self._thread.shutdown(wait=True)
