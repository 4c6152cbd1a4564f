"""The order of the splats, the one free choice SOG leaves a writer: this package only chooses
the permutation; the pipeline applies it to the codes and numbers the SH palette along it.

Every per-splat image shares one order, and the order decides how well lossless WebP compresses
them. Methods (`--order`):

* `chain` (default): a 3-D Hilbert curve over the positions, re-chained in chunks so that
  consecutive splats also store similar bytes (`chain`), or a y-first Morton where that encodes
  smaller on a sample of the image rows (the `choose` callable the pipeline passes in).
* `hilbert`, `morton`: the plain curves (`curves`); Morton is what splat-transform and
  LichtFeld Studio write.
* `plas`: PLAS on a 2-D grid (`plas`, fused CUDA kernels in `plas_cuda`), PyPI sogs's method:
  smooth in every attribute, larger in total on real scenes (bench/NOTES.md).

The codes are quantized before ordering: nothing quantized depends on the order, and `chain`
looks at the stored bytes.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

from sogs_core.formats.sog.codes import QuantizedScene
from sogs_core.formats.sog.layout import SQUARE_ALIGN, grid_shape
from sogs_core.order.chain import chain_chunk, chain_orders
from sogs_core.order.curves import curve_order, run_ids
from sogs_core.order.plas import plas_features, plas_sort
from sogs_core.settings import ORDER_METHODS, ChainConfig, PlasConfig

#: (scene, candidate orders, which candidates are the chained order, the chained order's row
#: alignment for `layout.grid_shape`) -> index of the one to write
Chooser = Callable[[QuantizedScene, list[np.ndarray], list[bool], int], int]


def order_scene(q: QuantizedScene, tensors: dict[str, torch.Tensor], method: str = "chain", seed: int = 0,
                plas: PlasConfig = PlasConfig(), chain: ChainConfig = ChainConfig(),
                choose: Optional[Chooser] = None,
                progress: Optional[Callable[[float], None]] = None,
                segments: Optional[list[int]] = None) -> tuple[np.ndarray, dict]:
    """Order a quantized scene. tensors: the float attributes on the working device (means,
    quats, log_scales, f_dc, opacity), for the curve and PLAS features. segments: lengths of
    consecutive runs of splats that must stay together and in place (a streamed SOG's chunks
    in one file): each run is ordered on its own.

    Returns (order: splat index per texel, info: which candidate was written, how many there
    were, `chained`: whether the order written is the chained one, whose images the encoder
    treats differently, settings.WebpSettings.for_order, and `row_align`: the images' width is
    `layout.grid_shape(n, row_align)`, the chain's chunk where the chained order is written)."""
    if method not in ORDER_METHODS:
        raise ValueError(f"unknown order {method!r} ({', '.join(ORDER_METHODS)})")
    if segments is not None and len(segments) > 1:
        return _order_segments(q, tensors, segments, method, seed, plas, chain, choose)
    n = q.count
    means = tensors["means"]
    info = {"order": method, "candidates": 1, "chosen": 0, "chained": False, "row_align": SQUARE_ALIGN}
    if method == "input" or n < 2:
        return np.arange(n), info
    if method in ("hilbert", "morton"):
        order = curve_order(means, method).cpu().numpy()
    elif method == "plas":
        feats = plas_features(means, tensors["quats"], tensors["log_scales"], tensors["f_dc"], tensors["opacity"])
        order = plas_sort(feats, grid_shape(n), seed=seed, config=plas, progress=progress).cpu().numpy()
    else:
        cands = [c.cpu().numpy() for c in chain_orders(q, means, chain)]
        chained = [i == 0 for i in range(len(cands))]        # chain_orders puts the chained order first
        chunk = chain_chunk(chain, means.device)
        pick = choose(q, cands, chained, chunk) if choose is not None and len(cands) > 1 else 0
        info.update(candidates=len(cands), chosen=pick, chained=chained[pick], row_align=chunk if chained[pick] else SQUARE_ALIGN)
        order = cands[pick]
    if progress is not None:
        progress(1.0)
    return order, info


__all__ = ["ORDER_METHODS", "ChainConfig", "PlasConfig", "order_scene"]


def _order_segments(q: QuantizedScene, tensors: dict[str, torch.Tensor], segments: list[int], method: str,
                    seed: int, plas: PlasConfig, chain: ChainConfig,
                    choose: Optional[Chooser]) -> tuple[np.ndarray, dict]:
    """Each run of `segments` ordered by `method` on its own, the runs kept in place.

    Curve orders (and `chain`, which becomes its Hilbert backbone here) take one sort of the
    whole file by (run, curve key): a streamed SOG's file holds hundreds of small runs, and
    chaining or sampling each apart is several times slower (bench/NOTES.md)."""
    if sum(segments) != q.count:
        raise ValueError(f"segments cover {sum(segments)} splats of {q.count}")
    means = tensors["means"]
    if method in ("chain", "hilbert", "morton"):
        order = curve_order(means, "morton" if method == "morton" else "hilbert",
                            runs=run_ids(segments, means.device)).cpu().numpy()
    else:
        parts, start = [], 0
        for length in segments:
            idx = np.arange(start, start + length)
            sub_t = {k: v[start:start + length] for k, v in tensors.items()}
            part, _ = order_scene(q.take(idx), sub_t, method, seed, plas, chain, choose)
            parts.append(part + start)
            start += length
        order = np.concatenate(parts)
    return order, {"order": method, "candidates": 1, "chosen": 0, "chained": False, "row_align": SQUARE_ALIGN,
                   "segments": len(segments)}
