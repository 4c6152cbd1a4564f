"""Render fidelity without a browser: a reference scene and its decoded copy rendered by our own
rasterizer (`raster`) from the same cameras (the engine harness's rule, `cameras.views_around`,
framed on the reference), scored per view with PSNR and SSIM (`metrics`).

This is what a viewer shows, cheap enough to run on every scene; `compare --render engine`
(the PlayCanvas engine in headless Chromium) stays the conformance truth.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from sogs_core.model.device import numpy_tensor
from sogs_core.model.splats import Splats
from sogs_core.render.cameras import views_around
from sogs_core.render.engine_model import SortBox
from sogs_core.render.metrics import psnr_ssim_views
from sogs_core.render.raster import Camera, prepare, render_views, to_levels

#: the PSNR reported for a view whose two renders are identical (their MSE is 0)
PSNR_CAP_DB = 100.0
#: the scores of one comparison a report carries on (`score_views` returns more: per view)
SCORE_KEYS = ("render_psnr", "render_ssim", "render_psnr_worst_view")


@dataclass(frozen=True)
class RenderMetricSettings:
    """How many views and how many pixels; `for_device` picks what each device affords.
    `work_buffer` (default): every splat rounded as the PlayCanvas engine keeps it (its compact
    work buffer: scale levels 8.6 % apart, 11-bit rotations and colours, byte opacity), which
    costs nothing and ranks files as the engine does; False scores the exact picture the files
    describe. `engine_model`: the engine's bucketed sort and RGBA8 blending too
    (`engine_model`), within 0.5-2 dB of the engine; slower (one blend per fragment layer, no
    tile kernel), and it needs each file's kind (`render_pair`'s `kinds`)."""

    views: int = 8
    width: int = 256
    height: int = 256
    fov_deg: float = 60.0
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    work_buffer: bool = True
    engine_model: bool = False

    @classmethod
    def for_device(cls, device: torch.device) -> "RenderMetricSettings":
        """8 views at 512 x 512 on a GPU; 4 views at 128 x 128 on a CPU, where the metric of a
        150k-splat scene (both sides, every view) costs 0.6-1.1 s (README, Quality in the
        viewer)."""
        if device.type == "cuda":
            return cls(views=8, width=512, height=512)
        return cls(views=4, width=128, height=128)

    @classmethod
    def if_wanted(cls, asked: Optional[bool], device: torch.device) -> Optional["RenderMetricSettings"]:
        """The settings for `device` where the metric runs, else None: `asked` True or False as a
        user said; None (not said) on a GPU only, where it costs a few percent of a compression
        (on a CPU about half of one)."""
        on = asked if asked is not None else device.type == "cuda"
        return cls.for_device(device) if on else None

    def renderer_label(self, device: torch.device) -> str:
        """What drew the pictures, as reports write it (`renderer`)."""
        model = " with the engine's rounding" if self.engine_model else "" if self.work_buffer else " (exact)"
        return f"sogs-raster{model} on {device.type}"

    @property
    def size_label(self) -> str:
        """views x width x height, as reports write it (`render_size`)."""
        return f"{self.views}x{self.width}x{self.height}"


def _prepared(s: Splats, device: torch.device, work_buffer: bool = False) -> dict[str, torch.Tensor]:
    """What a render reads of `s` on `device`: centres and colours, and the covariances and peak
    alphas that `prepare` makes from the host's rotations, scales and opacities a chunk at a
    time (so those never sit whole on the device: a 32M SH3 scene's render is bounded by what
    it keeps)."""
    host = {k: numpy_tensor(getattr(s, k)) for k in ("quats", "log_scales", "opacity")}
    t = {k: numpy_tensor(getattr(s, k)).to(device).float() for k in ("means", "f_dc", "f_rest")}
    made = prepare(host, device, work_buffer)
    return {**t, "cov6": made["cov6"], "alpha0": made["alpha0"]}


def render_scene(splats: Splats | dict[str, torch.Tensor], cameras: list[Camera],
                 background=(0.0, 0.0, 0.0), device: Optional[torch.device] = None,
                 engine_kind: Optional[str] = None, work_buffer: bool = False) -> list[torch.Tensor]:
    """One (H, W, 3) render per camera of a scene (`Splats`, or tensors on a device), as 8-bit
    levels (float 0..255) left on the scene's device. `work_buffer`: every splat rounded as the
    engine's work buffer rounds it; `engine_kind` (one of `engine_model.SOURCE_KINDS`: what file
    the splats came from): that, and the engine's sort and 8-bit blending too."""
    with torch.no_grad():
        # what every view shares, once
        work_buffer = work_buffer or engine_kind is not None
        if isinstance(splats, dict):
            if work_buffer and "cov6" in splats:
                raise ValueError("the engine model needs the splats' rotations and scales, not prepared covariances")
            t = prepare(splats, work_buffer=work_buffer)
        else:
            t = _prepared(splats, device or torch.device("cpu"), work_buffer)
        t = {**t, "work_buffer": work_buffer}          # a copy: the caller's dict stays as it was
        if engine_kind is not None:
            means, log_scales = (splats[k] if isinstance(splats, dict) else getattr(splats, k) for k in ("means", "log_scales"))
            as_numpy = lambda x: x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x  # noqa: E731
            t["sort_box"] = SortBox.of(as_numpy(means), as_numpy(log_scales), engine_kind)
        return [to_levels(img) for img in render_views(t, cameras, background)]


def cameras_for(reference_means: np.ndarray, settings: RenderMetricSettings) -> list[Camera]:
    """The cameras the harness uses, framed on the reference's positions."""
    views, near, far = views_around(reference_means, settings.views, settings.fov_deg)
    return [Camera(v, settings.width, settings.height, settings.fov_deg, near, far) for v in views]


def score_views(reference: list, other: list) -> dict:
    """Per-view PSNR (capped at PSNR_CAP_DB) and SSIM of two lists of renders (8-bit values,
    numpy arrays or tensors on any device), their means and the worst view's PSNR."""
    psnrs, ssims = psnr_ssim_views(list(reference), list(other))
    views = [{"psnr": min(p, PSNR_CAP_DB), "ssim": q} for p, q in zip(psnrs, ssims)]
    worst = min(range(len(views)), key=lambda i: views[i]["psnr"])
    return {"render_psnr": float(np.mean([v["psnr"] for v in views])),
            "render_ssim": float(np.mean([v["ssim"] for v in views])),
            "render_psnr_worst_view": views[worst]["psnr"], "render_worst_view": worst, "views": views}


def render_pair(reference_means: np.ndarray, reference, other, settings: RenderMetricSettings,
                device: Optional[torch.device] = None,
                kinds: tuple[str, str] = ("ply", "sog")) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Both scenes (`Splats`, or tensors on a device) rendered from the same cameras, framed on
    the reference's positions; with `settings.engine_model`, as the engine draws files of these
    `kinds` (`engine_model.source_kind`: default a PLY against a SOG)."""
    cams = cameras_for(reference_means, settings)
    ref_kind, other_kind = kinds if settings.engine_model else (None, None)
    return (render_scene(reference, cams, settings.background, device, ref_kind, settings.work_buffer),
            render_scene(other, cams, settings.background, device, other_kind, settings.work_buffer))


def render_fidelity(reference: Splats, other: Splats, settings: Optional[RenderMetricSettings] = None,
                    device: Optional[torch.device] = None, kinds: tuple[str, str] = ("ply", "sog")) -> dict:
    """PSNR/SSIM of `other` against `reference`, both rendered by our rasterizer from the same
    cameras (`kinds`: the two files' kinds, which the engine model needs: `render_pair`)."""
    device = device or torch.device("cpu")
    settings = settings or RenderMetricSettings.for_device(device)
    report = score_views(*render_pair(reference.means, reference, other, settings, device, kinds))
    report.update(renderer=settings.renderer_label(device), size=f"{settings.width}x{settings.height}")
    return report
