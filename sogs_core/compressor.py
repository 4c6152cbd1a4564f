"""`Compressor`: built once (device, thread pool, warmed kernels), then `compress` many scenes.

The stages, timed one by one: read (PLY bytes -> Splats), quantize (codebooks and per-splat
codes, and the fidelity report, computed on the device from the codes) with cluster (its SH
palette k-means) timed apart, sort (the order: `order/`, chosen from the quantized bytes),
encode (images and WebP, in parallel threads), write.
The GPU stages run under a lock while reading and encoding do not, so two threads calling
`compress` on one Compressor overlap one scene's WebP encoding with the next scene's GPU work;
the Ray actors use exactly that.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace, asdict, dataclass, field
from typing import Callable, Optional, Union

import numpy as np
import torch

from . import __version__
from .device import device_label, resolve_device
from .fidelity import fidelity_tensors
from .palette import kmeans, palette_size
from .order import ORDER_METHODS, ChainConfig, PlasConfig, number_palette, order_scene
from .order.choose import smallest_by_sample
from .quantize import (Palette, QuantizedScene, dequantize_tensors, encode_means, fit_palette, numpy_tensor,
                       quantize_splats, with_palette)
from .readers import SceneInput, read_scene
from .sog_files import SogPackage, write_sog
from .sog_layout import build_images
from .splats import Splats
from .webp_codec import WebpSettings, encode_all, encode_webp

Progress = Callable[[str, float], None]


@dataclass
class CompressSettings:
    """Everything that changes the output bytes; hashed into the manifest's settings_hash."""

    sh_bands: Optional[int] = None      # drop SH bands above this (None: keep all)
    seed: int = 0
    kmeans_iterations: int = 10
    order: str = "chain"                # one of order.ORDER_METHODS ("input": keep the input order)
    plas: PlasConfig = field(default_factory=PlasConfig)      # used by order "plas"
    chain: ChainConfig = field(default_factory=ChainConfig)   # used by order "chain"
    requantize: bool = False            # SOG v2 inputs: quantize again instead of keeping their codes
    webp: WebpSettings = field(default_factory=WebpSettings)

    def __post_init__(self) -> None:
        if self.order not in ORDER_METHODS:
            raise ValueError(f"unknown order {self.order!r} ({', '.join(ORDER_METHODS)})")

    def digest(self) -> str:
        """Hash of what changes the bytes: the schedule of an order that is not used is left out."""
        fields = asdict(self)
        if self.order != "plas":
            fields.pop("plas")
        if self.order != "chain":
            fields.pop("chain")
        if not self.requantize:
            fields.pop("requantize")        # the default leaves the hash of earlier runs as it was
        blob = json.dumps({"v": __version__, **fields}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class CompressResult:
    """What one `compress` call did: counts, sizes, per-stage seconds and the fidelity summary."""

    output: Optional[str]
    count: int
    sh_degree: int
    input_bytes: int
    output_bytes: int
    seconds: dict
    fidelity: dict
    device: str
    package: Optional[SogPackage] = None
    input_format: str = "ply"
    kept_codes: bool = False            # a SOG v2 input whose codes were kept (no second quantization)

    @property
    def ratio(self) -> float:
        return self.input_bytes / self.output_bytes if self.output_bytes else 0.0


class Compressor:
    """A reusable PLY -> SOG compressor bound to one device."""

    def __init__(self, device: str = "auto", settings: Optional[CompressSettings] = None,
                 threads: Optional[int] = None, warm: bool = True,
                 progress: Optional[Progress] = None) -> None:
        self.device = resolve_device(device)
        self.device_name = device_label(self.device)
        self.settings = settings or CompressSettings()
        self.pool = ThreadPoolExecutor(max_workers=threads or min(8, os.cpu_count() or 2),
                                       thread_name_prefix="sogs-encode")
        self.progress = progress
        self._gpu_lock = threading.Lock()
        #: the SH palette's k-means runs here, beside the stages that do not need it
        self._palette_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sogs-palette")
        self._side_stream: Optional[torch.cuda.Stream] = None
        if warm:
            self.warm_up()

    # -- lifecycle ------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Compress a tiny scene once (every GPU kernel, the order, the WebP encoder), so that the
        first real scene is not slower than the rest."""
        rng = np.random.default_rng(0)
        n = 1024
        tiny = Splats(rng.normal(size=(n, 3)).astype(np.float32), rng.normal(size=(n, 4)).astype(np.float32),
                      rng.normal(size=(n, 3)).astype(np.float32), rng.normal(size=(n, 3)).astype(np.float32),
                      rng.normal(size=n).astype(np.float32), rng.normal(size=(n, 45)).astype(np.float32))
        saved, self.progress = self.progress, None
        try:
            self.encode(tiny, {})
            # the tiny scene's images reach our WebP encoder only where the settings send small
            # images there (by default the SH labels only): warm it whatever they say
            if self.device.type == "cuda":
                own = replace(self.settings.webp, encoder="own")
                encode_webp(rng.integers(0, 256, (64, 64, 4), dtype=np.uint8), own, "warm.webp", self.device)
        finally:
            self.progress = saved

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self._palette_thread.shutdown(wait=True)

    def gpu_lock(self) -> threading.Lock:
        """The lock the GPU stages run under (a streamed chunk's decimation takes it too)."""
        return self._gpu_lock

    def __enter__(self) -> "Compressor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- stages ---------------------------------------------------------------------------------
    def _report(self, stage: str, fraction: float) -> None:
        if self.progress is not None:
            self.progress(stage, fraction)

    def _gpu_stages(self, splats: Splats, seconds: dict, with_fidelity: bool = True,
                    codes: Optional[QuantizedScene] = None,
                    segments: Optional[list[int]] = None
                    ) -> tuple[QuantizedScene, dict, dict[str, Future], WebpSettings]:
        """On the device: the SH palette's k-means starts on a second CUDA stream and thread as
        soon as the rows are on the device (it does not depend on the order), while this thread
        quantizes all but the palette, orders, and hands the five images that are final by then
        to CPU threads; then the palette is attached in the chosen order, numbered, and the
        fidelity report runs (timed with quantize). With `codes` (a SOG v2 input's stored bytes)
        nothing is quantized: the codes and palette are kept and only ordered. Returns (ordered
        codes, report, name -> future of the images already being encoded, the WebP settings for
        the order written)."""
        s = self.settings
        dev = self.device
        with self._gpu_lock, torch.no_grad():
            t0 = time.perf_counter()
            tens = {k: numpy_tensor(getattr(splats, k)).to(dev, non_blocking=True)
                    for k in ("means", "quats", "log_scales", "f_dc", "opacity", "f_rest")}
            palette = None
            fit = codes is None and tens["f_rest"].shape[1] > 0
            if fit and dev.type == "cuda":
                # on a CPU the k-means would only compete with the order for the same cores: it
                # runs after the order there, while the five images encode
                palette = self._palette_thread.submit(self._fit_palette_aside, tens["f_rest"])
            try:
                q = codes if codes is not None else quantize_splats(
                    tens["means"], tens["quats"], tens["log_scales"], tens["f_dc"], tens["opacity"])
                self._sync()
                t1 = time.perf_counter()
                order, q, info = order_scene(q, tens, s.order, seed=s.seed, plas=s.plas, chain=s.chain,
                                          choose=self._smallest, progress=lambda f: self._report("sort", f),
                                          segments=segments)
                t2 = time.perf_counter()
                webp = s.webp.for_order(info["chained"])
                early_images, _ = build_images(q)
                early = {name: self.pool.submit(encode_webp, img, webp, name, dev)
                         for name, img in early_images.items()}
            finally:
                t3 = time.perf_counter()
                fitted = palette.result() if palette is not None else None   # never leave it running
            if fit and palette is None:
                fitted = self._fit_palette_aside(tens["f_rest"])
            # 'cluster': what the palette added to the wall time (on a GPU only the wait for the
            # k-means that ran beside quantize and sort), so the stages still sum to the total
            seconds["cluster"] = time.perf_counter() - t3
            q = with_palette(q, fitted, order)
            q = number_palette(q)
            report: dict = {}
            if with_fidelity:
                order_t = torch.from_numpy(order).to(dev)
                ordered = {k: v[order_t] for k, v in tens.items()}
                report = {"count_reference": splats.count, "count_decoded": q.count, "unmatched": 0}
                report.update(fidelity_tensors(ordered, dequantize_tensors(q, dev)))
                if q.sh_bands and codes is None:
                    report["sh_palette_inertia"] = q.sh_inertia
            self._sync()
            seconds["sort"] = t2 - t1
            seconds["quantize"] = (t1 - t0) + (time.perf_counter() - t2) - seconds["cluster"]
            return q, report, early, webp

    def _fit_palette_aside(self, f_rest: torch.Tensor) -> Optional[Palette]:
        """fit_palette on its own CUDA stream (after the rows' copy on the caller's stream), the
        result on the host when it returns."""
        s = self.settings
        progress = lambda f: self._report("cluster", f)   # noqa: E731
        if f_rest.is_cuda:
            # one stream for the compressor's life: the caching allocator keeps freed blocks per
            # stream, so a new stream per scene grew the reserved memory scene after scene
            # (40 GB after 32 scenes of 1M splats on an H100, where 12 GB had sufficed)
            if self._side_stream is None:
                self._side_stream = torch.cuda.Stream(f_rest.device)
            side = self._side_stream
            side.wait_stream(torch.cuda.current_stream(f_rest.device))
            with torch.cuda.stream(side), torch.no_grad():
                out = fit_palette(f_rest, s.kmeans_iterations, s.seed, progress)
                side.synchronize()
            return out
        with torch.no_grad():
            return fit_palette(f_rest, s.kmeans_iterations, s.seed, progress)

    def _smallest(self, q: QuantizedScene, orders: list[np.ndarray], chained: list[bool]) -> int:
        """The candidate order whose sampled images encode smallest with this encoder's settings,
        always through libwebp: the samples are small (32k texels), where libwebp is fastest,
        and our encoder forced on them cost 2.5-3.5 s of sort at 1M-4M (bench/NOTES session 13)."""
        webp = replace(self.settings.webp, encoder="libwebp")
        return smallest_by_sample(q, orders, lambda imgs, keys: encode_all(imgs, self.pool, webp, keys), chained)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def encode(self, splats: Splats, seconds: Optional[dict] = None,
               with_fidelity: bool = True, codes: Optional[QuantizedScene] = None,
               segments: Optional[list[int]] = None) -> tuple[SogPackage, dict]:
        """Splats -> SogPackage (sort, cluster, quantize, encode); returns it and the fidelity.
        `codes`: the stored codes of a SOG v2 input, kept as they are (only re-ordered).
        `segments`: runs of splats ordered each on its own and kept in place (streamed chunks)."""
        seconds = {} if seconds is None else seconds
        if self.settings.sh_bands is not None:
            splats = splats.with_sh_degree(self.settings.sh_bands)
            codes = codes.with_sh_bands(self.settings.sh_bands) if codes is not None else None
        q, report, early, webp = self._gpu_stages(splats, seconds, with_fidelity, codes, segments)
        t0 = time.perf_counter()
        images, meta = build_images(q, skip=early)
        late = {name: self.pool.submit(encode_webp, img, webp, name, self.device) for name, img in images.items()}
        files = {name: fut.result() for name, fut in (*early.items(), *late.items())}
        # what is left of the encoding after the GPU stages (the first five images mostly
        # finished while the SH palette's k-means ran)
        seconds["encode"] = time.perf_counter() - t0
        self._report("encode", 1.0)
        return SogPackage(meta=meta, files=files), report

    def compress(self, source: Union[str, bytes, SceneInput], output: Optional[str] = None,
                 name: Optional[str] = None, with_fidelity: bool = True,
                 writer: Optional[Callable[[SogPackage], int]] = None) -> CompressResult:
        """Compress a scene file of any supported format (path or bytes; see `readers`; or a scene
        already read, such as a SOG folder fetched from a store); write to
        `output` (.sog bundle or folder) when given, or through `writer` (returns the bytes
        written; the Ray actor's store), timed as "write"."""
        seconds: dict = {}
        t0 = time.perf_counter()
        scene = source if isinstance(source, SceneInput) else read_scene(source, name)
        splats = scene.splats
        seconds["read"] = time.perf_counter() - t0
        self._report("read", 1.0)
        codes = None if self.settings.requantize else scene.codes
        pkg, report = self.encode(splats, seconds, with_fidelity, codes)
        t1 = time.perf_counter()
        if writer is not None:
            out_bytes = writer(pkg)
        else:
            out_bytes = write_sog(pkg, output) if output else len(pkg.bundle_bytes())
        seconds["write"] = time.perf_counter() - t1
        seconds["total"] = time.perf_counter() - t0
        degree = splats.sh_degree if self.settings.sh_bands is None else min(splats.sh_degree, self.settings.sh_bands)
        return CompressResult(output=output, count=splats.count, sh_degree=degree, input_bytes=scene.input_bytes,
                              output_bytes=out_bytes, seconds=seconds, fidelity=report,
                              device=self.device_name, package=pkg, input_format=scene.format,
                              kept_codes=codes is not None)


__all__ = ["Compressor", "CompressSettings", "CompressResult", "palette_size", "kmeans", "encode_means"]
