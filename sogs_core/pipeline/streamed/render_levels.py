"""What a viewer sees of each level of a streamed SOG: every level, decoded from the files written,
rendered against the whole input from the same cameras (the render metric, `render.score`).

Level 0 scores the compression; a coarser level scores what the viewer shows of the scene from
afar (the merge and the compression together), against the full-detail input. The input is held
whole, so this runs only where the writer read it whole (below the memory budget); each level is
decoded and rendered one at a time.
"""
from __future__ import annotations

from typing import Optional

import torch

from sogs_core.formats.lod_meta.read import read_lod_level, read_lod_meta
from sogs_core.model.splats import Splats
from sogs_core.render.score import SCORE_KEYS, RenderMetricSettings, cameras_for, render_scene, score_views


def level_render_scores(meta_path: str, reference: Splats, settings: Optional[RenderMetricSettings] = None,
                        device: Optional[torch.device] = None) -> list[dict]:
    """[{level, count, render_psnr, render_ssim, render_psnr_worst_view}] for every level of the
    streamed SOG `meta_path`, each against `reference` (the input, level 0's source)."""
    device = device or torch.device("cpu")
    settings = settings or RenderMetricSettings.for_device(device)
    cams = cameras_for(reference.means, settings)
    ref_images = render_scene(reference, cams, settings.background, device, work_buffer=settings.work_buffer)
    out = []
    for level in range(int(read_lod_meta(meta_path)["lodLevels"])):
        splats = read_lod_level(meta_path, level)
        scores = score_views(ref_images, render_scene(splats, cams, settings.background, device,
                                                      work_buffer=settings.work_buffer))
        out.append({"level": level, "count": splats.count, **{k: scores[k] for k in SCORE_KEYS}})
    return out
