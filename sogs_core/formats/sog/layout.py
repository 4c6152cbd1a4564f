"""SOG v2 layout: quantized codes -> RGBA texel arrays and meta.json (and back).

All per-splat images share one W x H; splat i sits at texel (i mod W, i div W). Texel channels
follow the format brief (`../shared/docs/sog-format.md`); unused channels are 0 and unused
alphas 255, as splat-transform writes them.
"""
from __future__ import annotations

import math
from typing import Collection

import numpy as np

from sogs_core import __version__
from sogs_core.model.errors import SogFormatError
from sogs_core.formats.sog.codes import QuantizedScene


#: the multiple of 4 that splat-transform's width W = ceil(sqrt(n) / 4) * 4 keeps: the square
#: layout, every order's but the chained one's
SQUARE_ALIGN = 4


def grid_shape(n: int, row_align: int = SQUARE_ALIGN) -> tuple[int, int]:
    """(H, W) of the texture for n splats: W as splat-transform (a multiple of 4 near sqrt(n)),
    H just enough.

    `row_align` > SQUARE_ALIGN (the chained order's chunk) rounds W up to a multiple of it where
    n holds a whole chunk, so that every row starts a chunk: the jump between two chunks then
    falls where the encoder predicts from above, and a column holds the same step of every
    chunk's walk (the five real scenes 0.3-0.4 % smaller, bench/NOTES.md session 27). Any W is
    valid SOG (the engine reads the images' own width). Padding (H * W - n < W cells) sits at
    the end of the last row, where the format ignores it.
    """
    if n <= 0:
        raise ValueError("grid_shape needs at least one splat")
    w = max(SQUARE_ALIGN, -(-math.ceil(math.sqrt(n)) // SQUARE_ALIGN) * SQUARE_ALIGN)
    if w > 16383 or -(-n // w) > 16383:
        raise ValueError(f"{n} splats exceed the 16383 x 16383 WebP limit of one SOG")
    aligned = -(-w // row_align) * row_align
    if row_align > SQUARE_ALIGN and n >= row_align and aligned <= 16383:
        w = aligned
    return -(-n // w), w


PER_SPLAT_FILES = ("means_l.webp", "means_u.webp", "quats.webp", "scales.webp", "sh0.webp")
SHN_FILES = ("shN_centroids.webp", "shN_labels.webp")


def texel_image(n: int, shape: tuple[int, int], cols: list[np.ndarray]) -> np.ndarray:
    """(H, W, 4) uint8 image whose first n texels hold the channel columns; the rest zero."""
    h, w = shape
    img = np.empty((h * w, 4), np.uint8)
    img[:n, :len(cols)] = np.stack(cols, 1)       # one contiguous pass instead of four strided ones
    img[:n, len(cols):] = 0
    img[n:] = 0
    return img.reshape(h, w, 4)


def per_splat_channels(q: QuantizedScene, skip: Collection[str] = ()) -> dict[str, list[np.ndarray]]:
    """name -> the four (N,) uint8 channel columns of each per-splat image, splats in q's order;
    the images named in `skip` are left out (their columns are not computed)."""
    full = np.full(q.count, 255, np.uint8)
    mq = q.means_q
    makers = {
        "means_l.webp": lambda: [(mq[:, a] & 0xFF).astype(np.uint8) for a in range(3)] + [full],
        "means_u.webp": lambda: [(mq[:, a] >> 8).astype(np.uint8) for a in range(3)] + [full],
        "quats.webp": lambda: [q.quats_b[:, c] for c in range(4)],
        "scales.webp": lambda: [q.scales_idx[:, c] for c in range(3)] + [full],
        "sh0.webp": lambda: [q.sh0_idx[:, c] for c in range(3)] + [q.opacity_b],
    }
    if q.sh_bands:
        labels = q.sh_labels
        makers["shN_labels.webp"] = lambda: [(labels & 0xFF).astype(np.uint8), (labels >> 8).astype(np.uint8),
                                             np.zeros(q.count, np.uint8), full]
    return {name: make() for name, make in makers.items() if name not in skip}


def sample_rows(n: int, bands: int, texels: int, min_rows: int = 1, row_align: int = SQUARE_ALIGN) -> tuple[np.ndarray, int]:
    """Texel indices of `bands` evenly spaced bands of whole rows, about `texels` in all and at
    least `min_rows` rows per band (all n texels when that is most of the image, the last row
    then partial), and the image width: (indices, W). A band keeps the width and the left
    neighbours it has in the full image (and from its second row on, the upper ones), so its
    encoded size estimates the full image's, for comparing orders. `row_align`: as `grid_shape`."""
    h, w = grid_shape(n, row_align)
    full_rows = n // w
    per_band = max(min_rows, -(-texels // (bands * w)))
    if full_rows < 2 * bands * per_band:
        return np.arange(n), w
    starts = np.linspace(0, full_rows - per_band, bands).astype(np.int64)
    return (starts[:, None] * w + np.arange(per_band * w)[None, :]).reshape(-1), w


def codebook_json(values: np.ndarray) -> list[float]:
    """A float32 codebook as the shortest decimals that read back to the same float32s: every
    reader (the engine's RGBA32F codebook texture, splat-transform, ours) stores codebooks as
    float32, so a double's 17 digits were half of meta.json for nothing."""
    return [float(str(v)) for v in np.asarray(values, np.float32)]


def build_images(q: QuantizedScene, shape: tuple[int, int] | None = None,
                 skip: Collection[str] = ()) -> tuple[dict[str, np.ndarray], dict]:
    """Images (name -> (H, W, 4) uint8) and the meta.json dict of a quantized scene; the images
    named in `skip` (already encoded elsewhere) are not built."""
    n = q.count
    shape = shape or grid_shape(n)
    images = {name: texel_image(n, shape, cols) for name, cols in per_splat_channels(q, skip).items()}
    meta = {
        "version": 2,
        "asset": {"generator": f"sogs-cluster v{__version__}"},
        "count": int(n),
        "means": {"mins": [float(v) for v in q.means_mins], "maxs": [float(v) for v in q.means_maxs],
                  "files": ["means_l.webp", "means_u.webp"]},
        "scales": {"codebook": codebook_json(q.scales_codebook), "files": ["scales.webp"]},
        "quats": {"files": ["quats.webp"]},
        "sh0": {"codebook": codebook_json(q.sh0_codebook), "files": ["sh0.webp"]},
    }
    if q.sh_bands:
        p, _, k = q.sh_palette_idx.shape
        rows = math.ceil(p / 64)
        cent = np.zeros((rows * 64 * k, 4), np.uint8)
        cent[:, 3] = 255
        # centroid c, coefficient j -> texel c*K + j; RGB = channel R, G, B of that coefficient
        cent[: p * k, :3] = q.sh_palette_idx.transpose(0, 2, 1).reshape(p * k, 3)
        if "shN_centroids.webp" not in skip:
            images["shN_centroids.webp"] = cent.reshape(rows, 64 * k, 4)
        meta["shN"] = {"count": int(q.sh_palette_count), "bands": int(q.sh_bands),
                       "codebook": codebook_json(q.sh_codebook), "files": list(SHN_FILES)}
    return images, meta


def check_meta_v2(meta: dict, source: str) -> None:
    """Reject a meta.json that lacks what the v2 decoder needs, with a message naming the key."""
    try:
        n = int(meta["count"])
        for key in ("means", "scales", "quats", "sh0"):
            if not meta[key]["files"]:
                raise KeyError(f"{key}.files")
        if len(meta["means"]["mins"]) != 3 or len(meta["means"]["maxs"]) != 3:
            raise KeyError("means.mins/maxs")
        if len(meta["scales"]["codebook"]) != 256 or len(meta["sh0"]["codebook"]) != 256:
            raise KeyError("256-entry codebooks")
        if "shN" in meta and (int(meta["shN"]["bands"]) not in (1, 2, 3)
                              or len(meta["shN"]["codebook"]) != 256):
            raise KeyError("shN.bands/codebook")
    except (KeyError, TypeError, ValueError) as exc:
        raise SogFormatError(source, f"meta.json is not SOG v2: missing or bad {exc}") from None
    if n <= 0:
        raise SogFormatError(source, f"meta.json count is {n}")
