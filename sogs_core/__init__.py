"""sogs_core: 3D Gaussian Splatting PLY -> PlayCanvas SOG compressor (no Ray in here).

The pipeline, one module or sub-package a stage: readers/ (read any splat format: PLY,
compressed PLY, SPZ, .splat, .ksplat, SOG) -> palette / codebook / quantize (cluster, quantize)
-> order/ (the splat order, chosen from the quantized bytes) -> sog_layout + webp_codec (encode)
-> sog_files (write); readers/sog decodes SOG back to `Splats`, ply_write writes PLY, fidelity
compares two scenes, compressor ties it together.
"""
__version__ = "0.2.0"

from sogs_core.model.errors import PlyError, SogFormatError, SogsError, SplatFileError  # noqa: E402,F401
from sogs_core.model.splats import Splats  # noqa: E402,F401
