"""Numbering of the SH palette entries, chosen after the order (the format leaves it free).

Why: `shN_labels` stores each splat's palette index as two bytes. Numbered as k-means leaves
them, indices are noise. Numbered by how often they are used, in blocks of 4096 (so the high
byte takes few values and common entries get small codes), and inside a block by first use along
the splat order (so nearby splats, which tend to share entries, get nearby numbers), the labels
image gets smaller for a slightly larger palette image (bench/NOTES.md).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from sogs_core.formats.sog.codes import QuantizedScene

BLOCK = 4096


def palette_numbering(labels: np.ndarray, count: int, block: int = BLOCK) -> np.ndarray:
    """New index of each palette entry, given each splat's entry in the final order: (count,)."""
    n = len(labels)
    uses = np.bincount(labels, minlength=count)
    first = np.full(count, n, np.int64)
    np.minimum.at(first, labels, np.arange(n, dtype=np.int64))
    by_use = np.argsort(-uses, kind="stable")
    use_rank = np.empty(count, np.int64)
    use_rank[by_use] = np.arange(count)
    key = (use_rank // block) * (n + 1) + first
    new = np.empty(count, np.int64)
    new[np.argsort(key, kind="stable")] = np.arange(count)
    return new


def renumber(q: QuantizedScene, new_index: np.ndarray) -> QuantizedScene:
    """q with SH palette entry e renamed new_index[e] (labels and palette rows)."""
    if q.sh_labels is None:
        return q
    rows = np.empty_like(new_index)
    rows[new_index] = np.arange(len(new_index))
    return replace(q, sh_labels=new_index[q.sh_labels], sh_palette_idx=q.sh_palette_idx[rows])


def number_palette(q: QuantizedScene) -> QuantizedScene:
    """q with its SH palette numbered along q's splat order (q itself without SH)."""
    if not q.sh_bands:
        return q
    return renumber(q, palette_numbering(q.sh_labels, q.sh_palette_count))


def apply_order(q: QuantizedScene, order: np.ndarray, device=None) -> QuantizedScene:
    """q's splats in `order` (gathered on `device` when it is a GPU), the palette numbered along it."""
    return number_palette(q.take(order, device))
