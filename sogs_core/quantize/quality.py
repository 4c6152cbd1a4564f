"""What `--quality` (0..100, cwebp's convention) trades: which levers each level pulls.

100 keeps the format's tightest contract (nearest codes everywhere) and splat-transform's SH
palette size. Below it:
- the low bits of the 16-bit positions are dropped, one more bit per 10 points under 100 (at
  most 4): the low position bytes are the least compressible image of a SOG, and a coarser
  position grid cost the least render quality of the levers tried;
- each splat's rotation is spelled nearest the identity among the 24 that give the same
  Gaussian (`quantize.spelling`): nothing a viewer sees changes, the bytes shrink;
- the scale codes go on the PlayCanvas engine's own 255 levels (`quantize.engine_grid`): the
  engine draws each splat's scale exactly as it draws the input's, and the scales image shrinks
  (bench/NOTES.md, session 36; each opacity making up for the fitted codebook's scale rounding,
  sessions 30-35's lever, lost to it in the engine);
- the SH palette shrinks (`PALETTE_FRACTIONS`): on small SH scenes it is most of the file, and
  weighted by what each splat shows, fewer entries cost little;
- below 90, opacities from training lose their two low bits (`OPACITY_DROP_BITS`; those
  already on the byte grid keep theirs): -1 to -2 % of the bytes for a few hundredths of a dB;
- splats whose opacity byte is 0 at the level's grid are not written (`quantize.visibility`):
  no viewer draws them, and trained scenes hold a few percent of them.
Fewer codebook levels and snapping labels to a neighbour's were measured and lost (bench/NOTES.md,
session 17).
"""
from __future__ import annotations

from sogs_core.quantize.palette.kmeans import palette_size

MAX_POSITION_DROP_BITS = 4
#: position bits dropped at most from a decoded SOG's positions (a SOG as input, its codes not
#: kept): they were quantized once already, and a second, coarser grid on top of the first cost
#: the PlayCanvas logo 2 dB in the engine for 2 % of the bytes (bench/NOTES.md, session 20)
SOG_INPUT_POSITION_DROP_BITS = 2
#: (lowest quality, low bits of the opacity byte dropped), first match from the top
OPACITY_DROP_BITS = ((90, 0), (0, 2))
#: (lowest quality, fraction of `palette_size` kept), first match from the top
PALETTE_FRACTIONS = ((100, 1.0), (90, 0.9), (70, 0.5), (0, 0.375))


def position_drop_bits(quality: int, sog_input: bool = False) -> int:
    """Low bits of each 16-bit position code left at zero: 0 at 100, 1 at 90-99, 2 at 80-89,
    3 at 70-79, 4 below 70; a decoded SOG's positions (`sog_input`) at most
    SOG_INPUT_POSITION_DROP_BITS."""
    if not 0 <= quality <= 100:
        raise ValueError(f"--quality must be 0..100, not {quality}")
    bits = min(MAX_POSITION_DROP_BITS, (100 - quality + 9) // 10)
    return min(bits, SOG_INPUT_POSITION_DROP_BITS) if sog_input else bits


def respell_rotations(quality: int) -> bool:
    """Below 100 the file may spell a splat's rotation and scales differently from the input
    (the same Gaussian); 100 keeps the input's spelling, attribute by attribute."""
    return quality < 100


def drop_invisible(quality: int) -> bool:
    """Below 100 splats stored with opacity 0 are left out of the file (`quantize.visibility`);
    100 writes every splat of the input."""
    return quality < 100


def scales_on_engine_grid(quality: int) -> bool:
    """Below 100 the scale codebook is the engine's own levels (`quantize.engine_grid`, where the
    scene's scales lie in their range); 100 fits a codebook to the scene's scales."""
    return quality < 100


def opacity_drop_bits(quality: int) -> int:
    """Low bits of each opacity byte left at zero (opacities already on the 8-bit grid keep theirs:
    `codes.encode_opacity`)."""
    return next(bits for lowest, bits in OPACITY_DROP_BITS if quality >= lowest)


def opacity_bound(quality: int) -> float:
    """The largest opacity error the level allows: half a step of its opacity grid (half a byte
    at 90 and above)."""
    return 0.5 * (1 << opacity_drop_bits(quality)) / 255.0


def position_bound_steps(quality: int, sog_input: bool = False) -> float:
    """The largest position error the level allows, in 16-bit steps (0.5 at 100)."""
    return 0.5 * (1 << position_drop_bits(quality, sog_input))


def palette_size_for(n: int, quality: int) -> int:
    """SH palette entries for n splats at `quality`: splat-transform's rule scaled by the level's
    fraction, in whole rows of 64 entries (the centroid image's width), never more than n."""
    base = palette_size(n)
    fraction = next(f for lowest, f in PALETTE_FRACTIONS if quality >= lowest)
    if fraction >= 1.0 or base <= 64:
        return base
    return min(n, max(64, int(round(base * fraction / 64)) * 64))
