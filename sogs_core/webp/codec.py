"""Lossless WebP in and out through Pillow, several images at once.

Why threads: Pillow releases the GIL inside libwebp, so one pool of threads encodes the five to
seven images of a scene in parallel; a Compressor owns one pool for its lifetime. `exact=True`
keeps the RGB of texels whose alpha is 0 (sh0 stores opacity in alpha: a transparent splat still
has a colour that must survive).
"""
from __future__ import annotations

import io
import queue
import threading
from concurrent.futures import Executor
from typing import Callable, Collection, Optional

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
# registered by name, so that opening a file asks this plugin alone: a bare Image.open of a
# format its pre-init list lacks (WebP) imports every plugin Pillow has, ~0.2 s a process
from PIL import WebPImagePlugin  # noqa: F401

from sogs_core.model.device import cuda_index
from sogs_core.webp.vp8l import encode_lossless

from sogs_core.settings import WebpSettings
from sogs_core.model.errors import SogFormatError


#: at most this many images in our encoder on a device at once, each on one of as many CUDA
#: streams made once: a large image holds gigabytes while it encodes, and the caching
#: allocator keeps freed blocks per stream (a stream per encoding thread multiplies the peak
#: reserved memory; bench/NOTES.md)
DEVICE_SLOTS = 2
_stream_pools: dict[int, "queue.Queue[torch.cuda.Stream]"] = {}
_pools_lock = threading.Lock()


def _stream_pool(device: torch.device) -> "queue.Queue[torch.cuda.Stream]":
    index = cuda_index(device)
    with _pools_lock:
        if index not in _stream_pools:
            pool: queue.Queue = queue.Queue()
            for _ in range(DEVICE_SLOTS):
                pool.put(torch.cuda.Stream(index))
            _stream_pools[index] = pool
        return _stream_pools[index]


def encode_webp(rgba: np.ndarray, settings: WebpSettings = WebpSettings(), name: str = "",
                device: Optional[torch.device] = None) -> bytes:
    """(H, W, 4) uint8 -> lossless WebP bytes: with the effort `settings` give the image `name`
    in libwebp, or on our own encoder where `settings.encoder` sends it (see WebpSettings)."""
    own = settings.own_encoder_for(rgba.shape[0] * rgba.shape[1], device, name)
    if own is not None:
        image = torch.from_numpy(np.ascontiguousarray(rgba))
        if own.type != "cuda":
            with torch.no_grad():
                return encode_lossless(image, own, settings.vp8l_for(name))
        pool = _stream_pool(own)
        stream = pool.get()                 # waits while DEVICE_SLOTS images are encoding
        try:
            stream.wait_stream(torch.cuda.current_stream(own))
            with torch.cuda.stream(stream), torch.no_grad():
                return encode_lossless(image.to(own, non_blocking=True), own, settings.vp8l_for(name))
        finally:
            pool.put(stream)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba), "RGBA").save(
        buf, format="WEBP", lossless=True, exact=True, method=settings.method, quality=settings.quality_for(name))
    return buf.getvalue()


def decode_webp(data: bytes, source: str = "<webp>", max_texels: Optional[int] = None) -> np.ndarray:
    """WebP bytes -> (H, W, 4) uint8 (alpha 255 where the file has none). `max_texels`: refuse,
    from the header alone, an image that declares more texels (a 30-byte file can declare
    13377 x 13377)."""
    try:
        with Image.open(io.BytesIO(data), formats=["WEBP"]) as img:     # any other format: unidentified
            w, h = img.size
            if max_texels is not None and w * h > max_texels:
                raise SogFormatError(source, f"declares {w} x {h} texels, more than the {max_texels:,} "
                                             "this scene can need")
            return np.asarray(img.convert("RGBA"))
    except SogFormatError:
        raise
    except UnidentifiedImageError:
        raise SogFormatError(source, "not a WebP image (no RIFF/WEBP header)") from None
    except Exception as exc:  # Pillow raises several types for corrupt data
        raise SogFormatError(source, f"cannot decode WebP: {exc}") from None


def encode_all(images: dict[str, np.ndarray], pool: Executor | None,
               settings: WebpSettings = WebpSettings(), chained: Collection[str] = (),
               then: Optional[Callable[[], None]] = None) -> dict[str, bytes]:
    """Encode every image, in parallel on `pool` when given; returns name -> bytes (same order).
    Keys are file names, or strings ending in one (the effort follows the file name); keys in
    `chained` are laid out in the chained order (WebpSettings.for_order). `then`: called once
    every image is queued, before the wait (work that should queue behind these)."""
    chosen = {name: settings.for_order(name in chained) for name in images}
    if pool is None:
        files = {name: encode_webp(img, chosen[name], name) for name, img in images.items()}
        if then is not None:
            then()
        return files
    futures = {name: pool.submit(encode_webp, img, chosen[name], name) for name, img in images.items()}
    if then is not None:
        then()
    return {name: fut.result() for name, fut in futures.items()}
