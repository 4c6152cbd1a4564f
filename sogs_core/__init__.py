"""sogs_core: 3D Gaussian Splatting PLY -> PlayCanvas SOG compressor (no Ray in here).

The pipeline, one module a stage: ply_io (read) -> palette / codebook / quantize (cluster,
quantize) -> order/ (the splat order, chosen from the quantized bytes) -> sog_layout + webp_codec
(encode) -> sog_files (write);
sog_read decodes back to `Splats`, fidelity compares two scenes, compressor ties it together.
"""
__version__ = "0.1.0"

from .errors import PlyError, SogFormatError, SogsError  # noqa: E402,F401
from .splats import Splats  # noqa: E402,F401
