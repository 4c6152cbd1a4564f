"""A scene reduced to a splat budget by the merge that makes the streamed SOG's coarser levels
(`edit.decimate`: neighbours along two Morton walks merged in pairs by moment matching), so
what is left still covers the scene: each round merges at most half the splats, rounds repeat
until the budget is met (no slack: the budget is a promise)."""
from __future__ import annotations

import numpy as np
import torch

from sogs_core.model.device import numpy_tensor
from sogs_core.model.splats import ATTRIBUTES, Splats
from sogs_core.edit.decimate import decimate


def reduce_to(splats: Splats, budget: int, device: torch.device) -> Splats:
    """At most `budget` splats (>= 1) made by merging neighbours of `splats`; the scene as it is
    when it already fits."""
    if splats.count <= budget:
        return splats
    t = {k: numpy_tensor(getattr(splats, k)).to(device) for k in ATTRIBUTES}
    n = splats.count
    while n > budget:
        t, _ = decimate(t, keep=max(0.5, budget / n))
        merged = n - len(t["means"])
        n -= merged
        if merged == 0:         # nothing left to pair (cannot happen with two or more splats)
            break
    return Splats(*(np.ascontiguousarray(t[k].cpu().numpy()) for k in ATTRIBUTES))
