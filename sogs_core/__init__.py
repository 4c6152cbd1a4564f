"""sogs_core: 3D Gaussian Splatting scenes -> PlayCanvas SOG, the library (no argparse, no Ray).

One package a job, in the order the data goes:
    model/      Splats (the scene in memory), errors, device choice, synthetic scenes
    formats/    every file format, reader and writer side by side (sog/: codes, layout, package, read)
    quantize/   codebooks and the SH palette (fit, nearest-centroid search, numbering)
    order/      choosing the splat permutation (curves, chain, PLAS)
    webp/       lossless WebP: libwebp through Pillow, and our own VP8L encoder
    pipeline/   the Compressor and its stages, fidelity, the streamed SOG
    render/     the PlayCanvas engine in headless Chromium, for `compare --render`
    settings    every setting that changes the output bytes (the settings hash)
"""
__version__ = "0.3.0"

from sogs_core.model.errors import PlyError, SogFormatError, SogsError, SplatFileError  # noqa: E402,F401
from sogs_core.model.splats import Splats  # noqa: E402,F401
