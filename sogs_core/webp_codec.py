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
from dataclasses import dataclass, replace
from typing import Collection, Optional

import numpy as np
import torch
from PIL import Image

from .encode.vp8l import Vp8lSettings, encode_lossless
from .errors import SogFormatError


@dataclass(frozen=True)
class WebpSettings:
    """libwebp lossless effort: `method` 0 (fast) .. 6 (small), `quality` 0..100 (effort too).

    Method 1 is the knee of bench/webp_bench.py's size-vs-time table on a 1M-splat scene (H100
    host, bench/NOTES.md): it wrote 18.73 MB in 0.49 s; method 4 a larger 18.97 MB in 3.1 s; the
    smallest, method 5-6, 18.69 MB in 2.4-3.1 s; method 0, 21.0 MB. The quality is chosen per
    image from measurements on the real scenes (bench/NOTES.md, sessions 5 and 10): below 25
    libwebp skips its cost-based re-parse of the LZ77 matches, which the near-incompressible
    images (means_l, quats, scales) do not pay for (same bytes or fewer on the real scenes, 3-29 %
    less time each at 8M); sh0 and the SH labels keep 25 (guitar's sh0 +0.85 % at 24); means_u and the palette
    pay for 50 (Morton order: means_u -6..-10 %, the palette -4 %). But along the chained order
    means_u comes out 3-5 % *smaller* at 25 than at 30-90 on all three real scenes, hence
    `chained_overrides`, which `for_order` puts first when the order written is the chained one."""

    method: int = 1
    quality: int = 24
    quality_overrides: tuple[tuple[str, int], ...] = (
        ("means_u.webp", 50), ("shN_centroids.webp", 50), ("sh0.webp", 25), ("shN_labels.webp", 25))
    chained_overrides: tuple[tuple[str, int], ...] = (("means_u.webp", 25),)
    #: "auto": on a CUDA device, our own encoder (sogs_core.encode.vp8l) for an image of at
    #: least the texels `own_from_texels` gives its name (`device_min_texels` for the others),
    #: libwebp otherwise and on a CPU; "libwebp"; "own": ours for every image, on the device
    #: given or the CPU. Why per image and size (bench/NOTES.md sessions 12-14, H100 host):
    #: libwebp encodes one image per call on one CPU thread (0.2-2.9 s per image at 1M-8M
    #: texels, sh0 and means_u the slowest), ours 0.08-0.15 s per 1M-texel image on the GPU,
    #: beside the other work. Bytes, ours against libwebp: the SH labels 0.92 at 1M, 0.999 on
    #: playbot (500k); sh0 0.996 at 1M, 0.999 on playbot, but 1.001-1.004 on biker and guitar
    #: (90k-150k); the palette 0.96 at 1M (983k texels), 1.12 on playbot (524k); means_l,
    #: scales, quats, means_u 1.001-1.07. Hence the labels at any size, sh0 from 500k texels,
    #: the palette from 750k, means_u and means_l (slow in libwebp, small or level in bytes)
    #: from 2M, all images from 6M; below, libwebp is fast anyway.
    encoder: str = "auto"
    own_from_texels: tuple[tuple[str, int], ...] = (
        ("shN_labels.webp", 0), ("sh0.webp", 500_000), ("shN_centroids.webp", 750_000),
        ("means_u.webp", 2_000_000), ("means_l.webp", 2_000_000))
    device_min_texels: int = 6_000_000
    #: our encoder's settings per image (the rest take the defaults): the SH labels go without
    #: the predictor, with up to 16 code groups (bench/NOTES.md session 14: raw labels beat the
    #: best predictor per tile under local statistics by 0.5-0.8 %, at a fraction of its time)
    vp8l_overrides: tuple[tuple[str, Vp8lSettings], ...] = (
        ("shN_labels.webp", Vp8lSettings(predictor=False, max_groups=16)),)

    def own_encoder_for(self, texels: int, device: Optional[torch.device], name: str = "") -> Optional[torch.device]:
        """The device our encoder should run on for the image `name` of `texels`, or None for libwebp."""
        if self.encoder == "own":
            return device if device is not None else torch.device("cpu")
        if self.encoder == "auto" and device is not None and device.type == "cuda" \
                and texels >= _for_image(self.own_from_texels, name, self.device_min_texels):
            return device
        if self.encoder not in ("auto", "own", "libwebp"):
            raise ValueError(f"unknown WebP encoder {self.encoder!r} (auto, own or libwebp)")
        return None

    def quality_for(self, name: str) -> int:
        """libwebp's quality for the image `name` (a file name, or a key ending in one)."""
        return _for_image(self.quality_overrides, name, self.quality)

    def vp8l_for(self, name: str) -> Vp8lSettings:
        """Our encoder's settings for the image `name` (a file name, or a key ending in one)."""
        return _for_image(self.vp8l_overrides, name, Vp8lSettings())

    def for_order(self, chained: bool) -> "WebpSettings":
        """These settings for images laid out in the chained order (`chained`) or another one."""
        if not chained:
            return self
        return replace(self, quality_overrides=self.chained_overrides + self.quality_overrides)


def _for_image(overrides: tuple, name: str, default):
    """The value of the first (image, value) override whose image `name` ends in, else `default`."""
    return next((value for image, value in overrides if name.endswith(image)), default)


#: at most this many images in our encoder on a device at once, each on one of as many CUDA
#: streams made once: an 8M-texel image holds a few GB while it encodes, and the caching
#: allocator keeps freed blocks per stream (a stream per encoding thread took an 8M scene's
#: peak reserved memory from 30 to 66 GB)
DEVICE_SLOTS = 2
_stream_pools: dict[int, "queue.Queue[torch.cuda.Stream]"] = {}
_pools_lock = threading.Lock()


def _stream_pool(device: torch.device) -> "queue.Queue[torch.cuda.Stream]":
    index = device.index if device.index is not None else torch.cuda.current_device()
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
               settings: WebpSettings = WebpSettings(), chained: Collection[str] = ()) -> dict[str, bytes]:
    """Encode every image, in parallel on `pool` when given; returns name -> bytes (same order).
    Keys are file names, or strings ending in one (the effort follows the file name); keys in
    `chained` are laid out in the chained order (WebpSettings.for_order)."""
    chosen = {name: settings.for_order(name in chained) for name in images}
    if pool is None:
        return {name: encode_webp(img, chosen[name], name) for name, img in images.items()}
    futures = {name: pool.submit(encode_webp, img, chosen[name], name) for name, img in images.items()}
    return {name: fut.result() for name, fut in futures.items()}
