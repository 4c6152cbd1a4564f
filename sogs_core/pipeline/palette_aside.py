"""The SH palette's k-means beside the other GPU stages (`side_stream`).

The palette does not depend on the splat order, so on a GPU it is fitted while the caller
quantizes and orders; on a CPU it would only compete with the order for the same cores, so it
runs in the caller's thread there.
"""
from __future__ import annotations

from concurrent.futures import Future
from typing import Callable, Optional

import torch

from sogs_core.pipeline.side_stream import SideStream
from sogs_core.quantize.palette.fit import Palette, fit_palette


class PaletteAside:
    """Fits SH palettes on one side thread and stream for its whole life."""

    def __init__(self, iterations: int, seed: int, progress: Callable[[float], None]) -> None:
        self.iterations, self.seed, self.progress = iterations, seed, progress
        self._side = SideStream("sogs-palette")

    def _job(self, f_rest: torch.Tensor, weights: Optional[torch.Tensor], size: Optional[int]):
        return lambda: fit_palette(f_rest, self.iterations, self.seed, self.progress, weights, size)

    def start(self, f_rest: torch.Tensor, weights: Optional[torch.Tensor] = None,
              size: Optional[int] = None) -> Future:
        """The fit of f_rest's palette, started on the side thread (rows already on the device)."""
        return self._side.submit(self._job(f_rest, weights, size), f_rest.device)

    def fit(self, f_rest: torch.Tensor, weights: Optional[torch.Tensor] = None,
            size: Optional[int] = None) -> Optional[Palette]:
        """fit_palette in the caller's thread (a CPU); `weights` and `size` as `fit_palette`'s."""
        return self._side.run_here(self._job(f_rest, weights, size))

    def close(self) -> None:
        self._side.close()
