"""Pick the smallest of several candidate orders by encoding a sample of their image rows.

Why: the chained order wins ~4 % on scenes whose neighbouring splats share attributes and loses
~1.5 % where they do not (the real SH scene of ../shared/scenes); no cheap statistic told the
two apart, the encoder does. Evenly spaced thin bands of whole rows (same width and left
neighbours as in the full image) of every per-splat image are encoded for each candidate, in the
encode pool, and the smallest sum wins: 64 bands of at least two rows (13 % of the texels of a
1M-splat scene, 4 % of 8M). Many thin bands, not a few thick ones: each order puts other splats
in a given row, and four thick bands ranked the playbot candidates wrongly where 64 thin ones
ranked all three real scenes right (bench/NOTES.md, session 5). But not one row each: a one-row
band's upper neighbours belong to another band, and one-row bands ranked the chained order above
Morton on the synthetic 8M scene whose five full images were 0.47 % larger; two rows ranked the
real scenes and the synthetic 1M, 4M and 8M right (bench/NOTES.md, session 11).
"""
from __future__ import annotations

from typing import Callable, Collection, Sequence

import numpy as np

from sogs_core.formats.sog.codes import QuantizedScene
from sogs_core.formats.sog.layout import per_splat_channels, sample_rows, texel_image

BANDS = 64
SAMPLE_TEXELS = 32768
ROWS = 2      # per band, at least
LABELS = "shN_labels.webp"


def smallest_by_sample(q: QuantizedScene, orders: list[np.ndarray],
                       encode: Callable[[dict[str, np.ndarray], Collection[str]], dict[str, bytes]],
                       chained: Sequence[bool] = (), bands: int = BANDS, texels: int = SAMPLE_TEXELS) -> int:
    """Index of the order under which q's sampled per-splat images encode smallest (first on
    ties). `encode(images, chained_keys)` encodes a batch, the keys in chained_keys with the
    settings of the chained order (`chained[k]`: candidate k is the chained order; the encoder's
    effort differs there, webp_codec.WebpSettings.for_order). Only the sampled texels are
    gathered. The SH labels image is left out: its size
    depends on the palette numbering, which needs the whole order (two gathers and a pass over
    N labels per candidate), and it moved by 0.1 % between the candidates on playbot."""
    idx, w = sample_rows(q.count, bands, texels, ROWS)
    shape = (-(-len(idx) // w), w)                   # whole rows; a partial last row zero padded
    images, chained_keys = {}, set()
    for k, order in enumerate(orders):
        for name, cols in per_splat_channels(q.take(order[idx]), skip=(LABELS,)).items():
            images[f"{k}:{name}"] = texel_image(len(idx), shape, cols)
            if k < len(chained) and chained[k]:
                chained_keys.add(f"{k}:{name}")
    files = encode(images, chained_keys)      # every candidate's images in one parallel batch
    sizes = [sum(len(b) for key, b in files.items() if key.startswith(f"{i}:")) for i in range(len(orders))]
    return int(np.argmin(sizes))
