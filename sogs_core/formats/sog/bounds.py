"""The worst errors SOG v2's codes allow at level 100 (the nearest codes), without torch: the
fidelity report checks them and the backfill's HTML report draws them, and the report must not
pay torch's import for three numbers.

Positions rounded to a 16-bit step (half a step), smallest-three 8-bit rotations (1.5 degrees),
opacity rounded to a byte after the sigmoid (half a byte); tests/test_roundtrip.py derives and
checks each. Scales and colours go through 256-entry codebooks fitted per scene, so their bound
is the scene's codebook, not a constant.
"""
from __future__ import annotations

QUANTIZATION_BOUNDS = {"position_max_steps": 0.5, "rotation_max_deg": 1.5, "opacity_max_error": 0.5 / 255}
