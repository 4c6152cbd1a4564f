"""What a viewer shows: our output rendered by the PlayCanvas engine in headless Chromium.

`harness` serves a page that loads the pinned `playcanvas` engine (npm) and one splat file (PLY,
compressed PLY, `.sog`, SOG folder), renders it from fixed cameras and posts the pixels back;
`cameras` frames views around a scene's bounds; `metrics` scores two renders (PSNR, SSIM).
`compare --render` and the tests use it; nothing in the compressor depends on it.
"""
from sogs_core.render.cameras import View, views_around
from sogs_core.render.harness import RenderError, Renderer, render_views
from sogs_core.render.metrics import psnr, ssim

__all__ = ["RenderError", "Renderer", "View", "psnr", "render_views", "ssim", "views_around"]
