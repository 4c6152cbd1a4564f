"""Work beside the compressor's GPU stages: one thread and one CUDA stream for a Compressor's life.

Why a stream of its own: work that does not depend on the next steps (the SH palette's k-means,
the input's renders for the render metric) overlaps them on the device instead of queueing
behind them. Why one for life: the caching allocator keeps freed blocks per stream, and a new
stream per scene grew the reserved memory scene after scene.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Optional, TypeVar

import torch

T = TypeVar("T")


class SideStream:
    """Runs callables on its own thread; on a CUDA device each inside its own stream, started
    after what the caller's stream has queued so far, and finished on the device before its
    result is handed back."""

    def __init__(self, name: str) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._stream: Optional[torch.cuda.Stream] = None

    def submit(self, fn: Callable[[], T], device: torch.device) -> Future:
        """fn() on the side thread (on `device`'s side stream when it is a GPU)."""
        ready = None
        if device.type == "cuda":
            if self._stream is None:
                self._stream = torch.cuda.Stream(device)
            ready = torch.cuda.current_stream(device).record_event()
        return self._thread.submit(self._run, fn, ready)

    def _run(self, fn: Callable[[], T], ready: Optional[torch.cuda.Event]) -> T:
        if ready is None:
            with torch.no_grad():
                return fn()
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
