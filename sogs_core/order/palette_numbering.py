"""Numbering of the SH palette entries, chosen after the order (the format leaves it free).

Why: `shN_labels` stores each splat's palette index as two bytes. Numbered as k-means leaves
them, indices are noise. Numbered by how often they are used, in blocks of 4096 (so the high
byte takes few values and common entries get small codes), and inside a block by first use along
the splat order (so nearby splats, which tend to share entries, get nearby numbers), the labels
image of the real SH scene came out 4.4 % smaller, the palette image 0.8 % larger: -0.4 % in
total (bench/NOTES.md, session 5; a principal-component numbering made the palette image 2.4 %
smaller but the labels no smaller).
"""
from __future__ import annotations

import numpy as np

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
