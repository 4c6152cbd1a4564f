"""What `--quality` (0..100, cwebp's convention) trades: which levers each level pulls.

100 keeps the format's tightest contract (nearest codes everywhere) and splat-transform's SH
palette size. Below it:
- the low bits of the 16-bit positions are dropped, one more bit per 10 points under 100 down
  to 70, and a fourth below 60 (`POSITION_DROP_BITS`): the low position bytes are the least
  compressible image of a SOG, and a coarser position grid cost the least render quality of
  the levers tried at the upper levels;
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
- below 90, the colour codebook has 128 levels instead of 256 (`COLOUR_CODEBOOK_SIZES`) where
  they stay within one display step of RMS error (`COLOUR_ERROR_BOUND`: the SOG-derived scenes'
  colours do, the trained ones' wider colours keep 256): -3 % of the bytes for 0.2-0.5 dB;
- below 70, a trained scene's rotations are stored on a 7-bit grid (`QUAT_STEPS`; a decoded
  SOG's keep their 8-bit codes' grid, as its positions keep theirs): in the engine's picture it
  costs less per byte than the fourth position bit, which moves below 60 (bench/NOTES.md,
  session 37);
- splats whose opacity byte is 0 at the level's grid are not written (`quantize.visibility`):
  no viewer draws them, and trained scenes hold a few percent of them.
Fewer scale levels, 64 colour levels and snapping labels to a neighbour's were measured and
lost (bench/NOTES.md, sessions 17 and 37).
"""
from __future__ import annotations

from sogs_core.quantize.palette.kmeans import palette_size

#: (lowest quality, low bits of each 16-bit position code dropped), first match from the top
POSITION_DROP_BITS = ((100, 0), (90, 1), (80, 2), (60, 3), (0, 4))
#: position bits dropped at most from a decoded SOG's positions (a SOG as input, its codes not
#: kept): they were quantized once already, and a second, coarser grid on top of the first cost
#: the PlayCanvas logo 2 dB in the engine for 2 % of the bytes (bench/NOTES.md, session 20)
SOG_INPUT_POSITION_DROP_BITS = 2
#: (lowest quality, low bits of the opacity byte dropped), first match from the top
OPACITY_DROP_BITS = ((90, 0), (0, 2))
#: (lowest quality, fraction of `palette_size` kept), first match from the top
PALETTE_FRACTIONS = ((100, 1.0), (90, 0.9), (70, 0.5), (0, 0.375))
#: (lowest quality, levels of the colour (f_dc) codebook), first match from the top; fewer than
#: 256 only where they keep COLOUR_ERROR_BOUND (`scene.colour_codebook`)
COLOUR_CODEBOOK_SIZES = ((90, 256), (0, 128))
#: the largest importance-weighted RMS error in displayed colour (0..1) a smaller colour codebook
#: may add: one 8-bit display step
COLOUR_ERROR_BOUND = 1.0 / 255.0
#: (lowest quality, step between the 8-bit rotation codes used), first match from the top
QUAT_STEPS = ((70, 1), (0, 2))


def _level(table: tuple, quality: int):
    """The value of the first (lowest quality, value) row of `table` that `quality` reaches."""
    if not 0 <= quality <= 100:
        raise ValueError(f"--quality must be 0..100, not {quality}")
    return next(value for lowest, value in table if quality >= lowest)


def position_drop_bits(quality: int, sog_input: bool = False) -> int:
    """Low bits of each 16-bit position code left at zero: 0 at 100, 1 at 90-99, 2 at 80-89,
    3 at 60-79, 4 below 60; a decoded SOG's positions (`sog_input`) at most
    SOG_INPUT_POSITION_DROP_BITS."""
    bits = _level(POSITION_DROP_BITS, quality)
    return min(bits, SOG_INPUT_POSITION_DROP_BITS) if sog_input else bits


def colour_codebook_size(quality: int) -> int:
    """Levels of the f_dc codebook at `quality` (the file's codebook always holds 256 entries;
    the unused ones repeat the last level)."""
    return _level(COLOUR_CODEBOOK_SIZES, quality)


def quat_step(quality: int, sog_input: bool = False) -> int:
    """Step between the rotation codes used at `quality`: 1 (every 8-bit code) or 2 (a 7-bit
    grid); a decoded SOG's rotations (`sog_input`) always 1 (a second grid on top of the one
    they sit on costs twice: the logo lost 1.7 dB for 3 % of its bytes)."""
    return 1 if sog_input else _level(QUAT_STEPS, quality)


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
    return _level(OPACITY_DROP_BITS, quality)


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
    fraction = _level(PALETTE_FRACTIONS, quality)
    if fraction >= 1.0 or base <= 64:
        return base
    return min(n, max(64, int(round(base * fraction / 64)) * 64))
