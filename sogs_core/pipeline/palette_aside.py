"""The SH palette's k-means beside the other GPU stages: its own thread and CUDA stream.

The palette does not depend on the splat order, so on a GPU it is fitted while this thread
quantizes and orders; on a CPU it would only compete with the order for the same cores, so it
runs in the caller's thread there.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Optional

import torch

from sogs_core.quantize.palette.fit import Palette, fit_palette


class PaletteAside:
    """Fits SH palettes on one side thread and one CUDA stream for its whole life (the caching
    allocator keeps freed blocks per stream: a new stream per scene grew the reserved memory
    scene after scene)."""

    def __init__(self, iterations: int, seed: int, progress: Callable[[float], None]) -> None:
        self.iterations, self.seed, self.progress = iterations, seed, progress
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sogs-palette")
        self._stream: Optional[torch.cuda.Stream] = None

    def start(self, f_rest: torch.Tensor, weights: Optional[torch.Tensor] = None,
              size: Optional[int] = None) -> Future:
        """The fit of f_rest's palette, started on the side thread (rows already on the device)."""
        return self._thread.submit(self.fit, f_rest, weights, size)

    def fit(self, f_rest: torch.Tensor, weights: Optional[torch.Tensor] = None,
            size: Optional[int] = None) -> Optional[Palette]:
        """fit_palette on the side stream (after the rows' copy on the caller's stream), the
        result on the host when it returns; on a CPU, plainly. `weights` and `size` as
        `fit_palette`'s."""
        if not f_rest.is_cuda:
            with torch.no_grad():
                return fit_palette(f_rest, self.iterations, self.seed, self.progress, weights, size)
        if self._stream is None:
            self._stream = torch.cuda.Stream(f_rest.device)
        side = self._stream
        side.wait_stream(torch.cuda.current_stream(f_rest.device))
        with torch.cuda.stream(side), torch.no_grad():
            out = fit_palette(f_rest, self.iterations, self.seed, self.progress, weights, size)
            side.synchronize()
        return out

    def close(self) -> None:
        self._thread.shutdown(wait=True)
