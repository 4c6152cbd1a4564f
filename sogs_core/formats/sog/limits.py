"""What a SOG of `count` splats can legitimately need, checked before anything is inflated or
decoded, so that a small hostile file cannot make us allocate gigabytes.

The rules (README, "Hostile inputs"):
- a per-splat image holds at most 4 x count + 16,384 texels (our layout and splat-transform's are
  about count plus a row; a square power-of-two texture, SOG v1's, at most 4 x count);
- the SH centroid image at most 65,536 entries x 15 coefficients plus a row of 64 entries;
- a lossless WebP of T texels takes at most 5 x T + 64 KiB bytes (incompressible texels cost a
  little over their 4 bytes), and meta.json at most 64 MiB.
"""
from __future__ import annotations

PER_SPLAT_EXTRA_TEXELS = 16_384
CENTROID_TEXELS = (65_536 + 64) * 15
META_JSON_BYTES = 64 << 20
WEBP_BYTES_PER_TEXEL = 5
WEBP_OVERHEAD_BYTES = 64 << 10


def declared_count(meta: dict) -> int:
    """meta.json's splat count (`count`; SOG v1: `means.shape[0]`), or 0 where it is missing or
    not a whole number (the decoder then refuses the file with its own message)."""
    if not isinstance(meta, dict):
        return 0
    count = meta.get("count")
    if count is None and isinstance(meta.get("means"), dict):
        shape = meta["means"].get("shape")
        count = shape[0] if isinstance(shape, list) and shape else None
    return count if isinstance(count, int) and count >= 0 else 0


def per_splat_texels(count: int) -> int:
    """The most texels a per-splat image of a scene of `count` splats can need."""
    return 4 * count + PER_SPLAT_EXTRA_TEXELS


def image_texels(meta: dict, name: str) -> int:
    """The most texels the image `name` of this SOG can need."""
    if "centroids" in name:
        return CENTROID_TEXELS
    return per_splat_texels(declared_count(meta))


def entry_bytes(meta: dict, name: str) -> int:
    """The most bytes the file `name` of this SOG can take once inflated."""
    if name == "meta.json":
        return META_JSON_BYTES
    return WEBP_BYTES_PER_TEXEL * image_texels(meta, name) + WEBP_OVERHEAD_BYTES
