"""Quantizing a scene: 16-bit positions, smallest-three rotations, one opacity byte, and the
scale and colour codebooks; the SH palette is fitted apart (`palette.fit`), since the order can
be chosen while it runs."""
from __future__ import annotations

from typing import Optional

import torch

from sogs_core.formats.sog.codes import (QuantizedScene, encode_means, encode_opacity, encode_quats,
                                        opacity_on_grid)
from sogs_core.model.sh import SH_C0
from sogs_core.quantize.codebook import kmeans_1d
from sogs_core.quantize.engine_grid import engine_grid_codebook, fits_engine_grid
from sogs_core.quantize.palette.fit import add_palette
from sogs_core.quantize.quality import (COLOUR_ERROR_BOUND, colour_codebook_size, opacity_drop_bits, palette_size_for,
                                        position_drop_bits, quat_step, scales_on_engine_grid)
from sogs_core.quantize.weights import COLOUR_TAIL_WEIGHT, TAIL_WEIGHT, splat_importance


def quantize_splats(means: torch.Tensor, quats: torch.Tensor, log_scales: torch.Tensor,
                    f_dc: torch.Tensor, opacity: torch.Tensor, quality: int = 100,
                    importance: Optional[torch.Tensor] = None, sog_input: bool = False) -> QuantizedScene:
    """Quantize everything but the SH palette (all tensors on one device), splats in input order.

    Nothing here depends on the order, so the order is chosen afterwards, from these bytes, and
    applied with `QuantizedScene.take`; the five images these codes fill are then final, and the
    compressor encodes them while the SH palette's k-means (`add_palette`) runs. `quality` picks
    the levers of `quantize.quality` (100: nearest codes everywhere). `importance`: the splats'
    `splat_importance` when the caller has it already (it weighs the SH palette too).
    `sog_input`: the splats are a decoded SOG's (their positions and rotations keep a finer grid)."""
    mq, mins, maxs = encode_means(means, position_drop_bits(quality, sog_input))
    weight = (splat_importance(log_scales, opacity) if importance is None else importance)[:, None]
    if scales_on_engine_grid(quality) and fits_engine_grid(log_scales, means):
        scb, sidx = engine_grid_codebook(log_scales)
    else:
        scb, sidx = kmeans_1d(log_scales, pin_ends=True, density_alpha=TAIL_WEIGHT,
                              importance=weight.expand_as(log_scales))
    dcb, didx = colour_codebook(f_dc, weight.expand_as(f_dc), colour_codebook_size(quality))
    on_grid = opacity_on_grid(opacity)
    return QuantizedScene(
        count=len(means), means_q=mq.cpu().numpy(), means_mins=mins, means_maxs=maxs,
        quats_b=encode_quats(quats, quat_step(quality, sog_input)).cpu().numpy(),
        scales_idx=sidx.cpu().numpy(), scales_codebook=scb.cpu().numpy(),
        sh0_idx=didx.cpu().numpy(), sh0_codebook=dcb.cpu().numpy(),
        opacity_b=encode_opacity(opacity, opacity_drop_bits(quality), on_grid).cpu().numpy())


def colour_codebook(f_dc: torch.Tensor, weight: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The f_dc codebook (256 entries, as the format holds) and labels: `levels` fitted levels
    where their importance-weighted RMS error in displayed colour stays within
    COLOUR_ERROR_BOUND, else 256 (a trained scene's wide colours lose a dB at 128 where a
    quantized input's lose a few tenths; bench/NOTES.md, session 37). Unused entries repeat the
    last level."""
    fit = lambda k: kmeans_1d(f_dc, k=k, pin_ends=True, density_alpha=COLOUR_TAIL_WEIGHT, importance=weight)  # noqa: E731
    dcb, didx = fit(levels)
    if levels < 256:
        err = (dcb[didx.long()] - f_dc).double() * SH_C0
        if float(((weight * err * err).sum() / weight.sum().clamp_min(1e-30)).sqrt()) > COLOUR_ERROR_BOUND:
            return fit(256)
        dcb = torch.cat([dcb, dcb[-1:].expand(256 - len(dcb))])
    return dcb, didx


def quantize_scene(means: torch.Tensor, quats: torch.Tensor, log_scales: torch.Tensor,
                   f_dc: torch.Tensor, opacity: torch.Tensor, f_rest: torch.Tensor,
                   kmeans_iterations: int = 10, seed: int = 0, progress=None,
                   timings: Optional[dict] = None, quality: int = 100) -> QuantizedScene:
    """Quantize every attribute, SH palette included (`quantize_splats` + `add_palette`, the
    palette weighted by `splat_importance` and sized by `quality`)."""
    return add_palette(quantize_splats(means, quats, log_scales, f_dc, opacity, quality), f_rest,
                       kmeans_iterations, seed, progress, timings, weights=splat_importance(log_scales, opacity),
                       size=palette_size_for(len(f_rest), quality))
