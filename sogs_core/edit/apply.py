"""`apply_edits`: every edit of `EditSettings` in its fixed order, with what each one removed."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import torch

from sogs_core.edit.budget import reduce_to
from sogs_core.edit.filters import inside_box, inside_sphere, opaque_enough
from sogs_core.edit.transform import transform_splats
from sogs_core.model.errors import EmptySceneError
from sogs_core.model.splats import Splats
from sogs_core.settings import EditSettings


@dataclass
class EditReport:
    """What the edits did to one scene: splat counts removed by each step (the invalid ones are
    counted by the reader, `formats.read_scene`, which drops them before anything else)."""

    input_splats: int = 0               # as read, invalid ones included
    dropped_invalid: int = 0
    dropped_filter: int = 0             # outside the box or sphere, or below the opacity floor
    merged_budget: int = 0              # removed by merging down to --max-splats
    dropped_invisible: int = 0          # opacity byte 0 at the --quality level: drawn by no viewer
    applied: str = ""                   # the edits, as options (EditSettings.summary)

    def as_dict(self) -> dict:
        return asdict(self)


def budget_of(edit: EditSettings, count: int) -> Optional[int]:
    """The number of splats --max-splats allows for a scene of `count` (None: no budget)."""
    if edit.max_splats is not None:
        return edit.max_splats
    if edit.max_splats_fraction is not None:
        return max(1, int(round(count * edit.max_splats_fraction)))
    return None


def apply_edits(splats: Splats, edit: EditSettings, device: torch.device, name: str = "",
                report: Optional[EditReport] = None) -> tuple[Splats, EditReport]:
    """`splats` transformed, filtered and reduced as `edit` says (invalid splats are already
    gone: the reader drops them); raises EmptySceneError when a filter leaves nothing."""
    report = report or EditReport(input_splats=splats.count, applied=edit.summary())
    splats = transform_splats(splats, edit.rotate, edit.scale, edit.translate)
    keep = np.ones(splats.count, bool)
    if edit.filter_box is not None:
        keep &= inside_box(splats, edit.filter_box)
    if edit.filter_sphere is not None:
        keep &= inside_sphere(splats, edit.filter_sphere)
    if edit.min_opacity is not None:
        keep &= opaque_enough(splats, edit.min_opacity)
    if not keep.all():
        report.dropped_filter = int((~keep).sum())
        if not keep.any():
            raise EmptySceneError(f"{name}: no splat left after the filters ({report.applied}; "
                                  f"{splats.count} splats were in the scene)")
        splats = splats.take(np.flatnonzero(keep))
    budget = budget_of(edit, splats.count)
    if budget is not None and splats.count > budget:
        before = splats.count
        splats = reduce_to(splats, budget, device)
        report.merged_budget = before - splats.count
    return splats, report


__all__ = ["EditReport", "EmptySceneError", "apply_edits", "budget_of"]
