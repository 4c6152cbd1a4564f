"""Lossless WebP in and out through Pillow, several images at once.

Why threads: Pillow releases the GIL inside libwebp, so one pool of threads encodes the five to
seven images of a scene in parallel; a Compressor owns one pool for its lifetime. `exact=True`
keeps the RGB of texels whose alpha is 0 (sh0 stores opacity in alpha: a transparent splat still
has a colour that must survive).
"""
from __future__ import annotations

import io
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import SogFormatError


@dataclass(frozen=True)
class WebpSettings:
    """libwebp lossless effort: `method` 0 (fast) .. 6 (small), `quality` 0..100 (effort too).

    The default is the knee of bench/webp_bench.py's size-vs-time table on a 1M-splat scene
    (H100 host, bench/NOTES.md): method 1 wrote 18.73 MB in 0.49 s; method 4 wrote a larger
    18.97 MB in 3.1 s; the smallest, method 5-6, 18.69 MB in 2.4-3.1 s; method 0, 21.0 MB."""

    method: int = 1
    quality: int = 25
    #: images whose bytes pay for more search (quality 50 vs 25: means_u -7..-10 %, the SH
    #: palette -4 %); the others came out within +-0.05 % at half the time (bench/NOTES.md, session 5)
    quality_overrides: tuple[tuple[str, int], ...] = (("means_u.webp", 50), ("shN_centroids.webp", 50))

    def quality_for(self, name: str) -> int:
        """The quality for the image `name` (a file name, or a key ending in one)."""
        for image, quality in self.quality_overrides:
            if name.endswith(image):
                return quality
        return self.quality


def encode_webp(rgba: np.ndarray, settings: WebpSettings = WebpSettings(), name: str = "") -> bytes:
    """(H, W, 4) uint8 -> lossless WebP bytes, with the effort `settings` give the image `name`."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba), "RGBA").save(
        buf, format="WEBP", lossless=True, exact=True, method=settings.method, quality=settings.quality_for(name))
    return buf.getvalue()


def decode_webp(data: bytes, source: str = "<webp>") -> np.ndarray:
    """WebP bytes -> (H, W, 4) uint8 (alpha 255 where the file has none)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "WEBP":
                raise SogFormatError(source, f"expected a WebP image, found {img.format}")
            return np.asarray(img.convert("RGBA"))
    except SogFormatError:
        raise
    except Exception as exc:  # Pillow raises several types for corrupt data
        raise SogFormatError(source, f"cannot decode WebP: {exc}") from None


def encode_all(images: dict[str, np.ndarray], pool: Executor | None,
               settings: WebpSettings = WebpSettings()) -> dict[str, bytes]:
    """Encode every image, in parallel on `pool` when given; returns name -> bytes (same order).
    Keys are file names, or strings ending in one (the effort follows the file name)."""
    if pool is None:
        return {name: encode_webp(img, settings, name) for name, img in images.items()}
    futures = {name: pool.submit(encode_webp, img, settings, name) for name, img in images.items()}
    return {name: fut.result() for name, fut in futures.items()}
