"""Pick the smallest of several candidate orders by encoding a sample of their image rows.

Why: the chained order wins on scenes whose neighbouring splats share attributes and loses
where they do not (the real SH scene of ../shared/scenes); no cheap statistic tells the two
apart, the encoder does. Evenly spaced thin bands of whole rows (same width and left neighbours
as in the full image) of every per-splat image are encoded for each candidate, in the encode
pool, and the smallest sum wins: 64 bands of at least two rows. Many thin bands, not a few thick
ones, because each order puts other splats in a given row; at least two rows, because a one-row
band's upper neighbours belong to another band (bench/NOTES.md).
"""
from __future__ import annotations

from typing import Callable, Collection, Sequence

import numpy as np

from sogs_core.formats.sog.codes import QuantizedScene
from sogs_core.formats.sog.layout import SQUARE_ALIGN, per_splat_channels, sample_rows, texel_image

BANDS = 64
SAMPLE_TEXELS = 32768
ROWS = 2      # per band, at least
LABELS = "shN_labels.webp"


def smallest_by_sample(q: QuantizedScene, orders: list[np.ndarray],
                       encode: Callable[[dict[str, np.ndarray], Collection[str]], dict[str, bytes]],
                       chained: Sequence[bool] = (), row_align: int = SQUARE_ALIGN, bands: int = BANDS,
                       texels: int = SAMPLE_TEXELS) -> int:
    """Index of the order under which q's sampled per-splat images encode smallest (first on
    ties). `encode(images, chained_keys)` encodes a batch, the keys in chained_keys with the
    settings of the chained order (`chained[k]`: candidate k is the chained order; the encoder's
    effort differs there, settings.WebpSettings.for_order, and its rows a multiple of `row_align`
    wide, `layout.grid_shape`; the others keep the square). Only the sampled texels are gathered.
    The SH labels image is left out: its size depends on the palette numbering, which needs the
    whole order (two gathers and a pass over N labels per candidate), and it barely differs
    between the candidates."""
    images, chained_keys, sampled = {}, set(), []
    for k, order in enumerate(orders):
        is_chained = k < len(chained) and chained[k]
        idx, w = sample_rows(q.count, bands, texels, ROWS, row_align if is_chained else SQUARE_ALIGN)
        sampled.append(len(idx))
        shape = (-(-len(idx) // w), w)               # whole rows; a partial last row zero padded
        for name, cols in per_splat_channels(q.take(order[idx]), skip=(LABELS,)).items():
            images[f"{k}:{name}"] = texel_image(len(idx), shape, cols)
            if is_chained:
                chained_keys.add(f"{k}:{name}")
    files = encode(images, chained_keys)      # every candidate's images in one parallel batch
    # bytes per sampled texel: candidates of other widths sample other numbers of texels
    sizes = [sum(len(b) for key, b in files.items() if key.startswith(f"{i}:")) / sampled[i]
             for i in range(len(orders))]
    return int(np.argmin(sizes))
