"""The chained order's final images, encoding while the order is still being chosen.

Why: the choice between the chained order and the curves encodes a sample of each candidate's
images, and on a GPU host the final images could only start after it (a tenth of a 1M-splat
file's wall on an H100 host, bench/NOTES.md). The chained order is the one written on nearly
every real scene, so its images are queued right behind the sample's encodes, on cores the
sample leaves idle; when another candidate wins they are dropped. The bytes are the same either
way: they are the images the chosen order would have encoded.
"""
from __future__ import annotations

from concurrent.futures import Future
from typing import Callable, Optional

import numpy as np

from sogs_core.formats.sog.codes import QuantizedScene

#: (q in the candidate's order, that order's image shape) -> image name -> its encoding's future
Submit = Callable[[QuantizedScene, tuple[int, int]], dict[str, Future]]


class ImagesAhead:
    """One compress call's images started ahead: at most one candidate (the first chained one)."""

    def __init__(self, reorder: Callable[[QuantizedScene, np.ndarray], QuantizedScene],
                 shape_for: Callable[[int, int], tuple[int, int]], submit: Submit) -> None:
        self._reorder, self._shape_for, self._submit = reorder, shape_for, submit
        self.index: Optional[int] = None
        self.q: Optional[QuantizedScene] = None
        self.shape: Optional[tuple[int, int]] = None
        self.futures: dict[str, Future] = {}

    def start(self, q: QuantizedScene, orders: list[np.ndarray], chained: list[bool], row_align: int) -> None:
        """Start the first chained candidate's images (nothing when none is chained)."""
        first = next((k for k, c in enumerate(chained) if c), None)
        if first is None or self.index is not None:
            return
        self.index = first
        self.q = self._reorder(q, orders[first])
        self.shape = self._shape_for(self.q.count, row_align)
        self.futures = self._submit(self.q, self.shape)

    def taken(self, chosen: int) -> bool:
        """Whether the images started are the chosen order's; if not, they are dropped (those not
        yet running never start, the others finish unread)."""
        if self.index is not None and self.index == chosen:
            return True
        for fut in self.futures.values():
            fut.cancel()
        self.index, self.q, self.futures = None, None, {}
        return False
