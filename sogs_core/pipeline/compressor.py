"""`Compressor`: built once (device, thread pool, warmed kernels), then `compress` many scenes.

The stages, timed one by one: read (any format -> Splats), quantize (codebooks and per-splat
codes, and the fidelity report computed on the device from the codes) with cluster (the SH
palette's k-means, `palette_aside`) timed apart, sort (the order, `sogs_core.order`, chosen
from the quantized bytes), encode (images and WebP, in parallel threads), write.
The GPU stages run under a lock while reading and encoding do not, so two threads calling
`compress` on one Compressor overlap one scene's WebP encoding with the next scene's GPU work;
the Ray actors use exactly that.
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Union

import numpy as np
import torch

from sogs_core.edit import EditReport, apply_edits
from sogs_core.formats import SceneInput, is_sog_format, read_scene
from sogs_core.formats.sog.codes import QuantizedScene, dequantize_tensors
from sogs_core.formats.sog.layout import build_images, grid_shape
from sogs_core.formats.sog.package import SogPackage, write_sog
from sogs_core.model.device import device_label, numpy_tensor, prefer_expandable_segments, resolve_device
from sogs_core.model.splats import ATTRIBUTES, Splats
from sogs_core.order import order_scene
from sogs_core.pipeline.choose_order import smallest_by_sample
from sogs_core.pipeline.fidelity import fidelity_tensors
from sogs_core.pipeline.images_ahead import ImagesAhead
from sogs_core.pipeline.palette_aside import PaletteAside
from sogs_core.pipeline.side_stream import SideStream
from sogs_core.quantize.palette.fit import Palette, with_palette
from sogs_core.quantize.palette.numbering import apply_order, number_palette
from sogs_core.quantize.quality import palette_size_for, respell_rotations
from sogs_core.quantize.scene import quantize_splats
from sogs_core.quantize.spelling import respell_near_identity
from sogs_core.quantize.visibility import visible_rows, visible_rows_in_runs
from sogs_core.quantize.weights import splat_importance
from sogs_core.render.score import SCORE_KEYS, RenderMetricSettings, cameras_for, render_scene, score_views
from sogs_core.settings import CompressSettings, WebpSettings
from sogs_core.webp.codec import encode_all, encode_webp

Progress = Callable[[str, float], None]


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
    edits: EditReport = field(default_factory=EditReport)   # what `settings.edit` removed and applied

    @property
    def ratio(self) -> float:
        return self.input_bytes / self.output_bytes if self.output_bytes else 0.0


class Compressor:
    """A reusable scene -> SOG compressor bound to one device."""

    def __init__(self, device: str = "auto", settings: Optional[CompressSettings] = None,
                 threads: Optional[int] = None, warm: bool = True,
                 progress: Optional[Progress] = None,
                 render_metric: Optional[RenderMetricSettings] = None, gpu_slots: int = 1,
                 images_ahead: bool = True) -> None:
        """render_metric: also render input and output with our rasterizer and report PSNR/SSIM
        (`render.score`), timed as the stage "render"; None: per-attribute errors only.
        gpu_slots: how many callers may be inside the GPU stages at once (1: one at a time; more
        lets one caller's host-side steps overlap another's kernels, for more device memory).
        images_ahead: start the chained order's final images while the order is chosen, queued
        behind the choice's samples (`images_ahead`; the same bytes; False: only once chosen)."""
        prefer_expandable_segments()
        self.device = resolve_device(device)
        self.images_ahead = images_ahead
        self.render_metric = render_metric
        self.device_name = device_label(self.device)
        self.settings = settings or CompressSettings()
        self.pool = ThreadPoolExecutor(max_workers=threads or min(8, os.cpu_count() or 2),
                                       thread_name_prefix="sogs-encode")
        self.progress = progress
        if gpu_slots < 1:
            raise ValueError(f"gpu_slots must be >= 1, not {gpu_slots}")
        self.gpu_slots = gpu_slots
        self._gpu_lock = threading.BoundedSemaphore(gpu_slots)
        self._palette = PaletteAside(self.settings.kmeans_iterations, self.settings.seed,
                                     lambda f: self._report("cluster", f))
        # the render metric's renders of the input, launched beside quantize and order on a GPU
        # (on the caller's stream: a stream of its own would hold a second memory pool)
        self._reference = SideStream("sogs-reference", own_stream=False)
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
        self._palette.close()
        self._reference.close()

    def gpu_lock(self) -> threading.BoundedSemaphore:
        """The slots the GPU stages run under (a streamed chunk's decimation takes one too)."""
        return self._gpu_lock

    def __enter__(self) -> "Compressor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the GPU stages, one small step each ---------------------------------------------------
    def _report(self, stage: str, fraction: float) -> None:
        if self.progress is not None:
            self.progress(stage, fraction)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _to_device(self, splats: Splats) -> dict[str, torch.Tensor]:
        return {k: numpy_tensor(getattr(splats, k)).to(self.device, non_blocking=True) for k in ATTRIBUTES}

    def _quantize(self, tens: dict[str, torch.Tensor], codes: Optional[QuantizedScene],
                  importance: Optional[torch.Tensor] = None, sog_input: bool = False) -> QuantizedScene:
        """All codes but the SH palette, or a SOG v2 input's stored codes as they are."""
        q = codes if codes is not None else quantize_splats(
            tens["means"], tens["quats"], tens["log_scales"], tens["f_dc"], tens["opacity"], self.settings.quality,
            importance, sog_input)
        self._sync()
        return q

    def _order(self, q: QuantizedScene, tens: dict[str, torch.Tensor],
               segments: Optional[list[int]]) -> tuple[np.ndarray, dict, Optional[ImagesAhead]]:
        """The order and its info (`order_scene`), and the images started ahead of the choice
        (one scene, not a streamed file's runs, whose candidates are chosen run by run)."""
        s = self.settings
        ahead = None
        choose = self._smallest
        if self.images_ahead and segments is None:
            ahead = ImagesAhead(lambda qq, order: apply_order(qq, order, self.device), grid_shape,
                                lambda qq, shape: self._encode_final_images(qq, s.webp.for_order(True), shape))

            def choose(qq: QuantizedScene, orders: list[np.ndarray], chained: list[bool], row_align: int) -> int:
                # queued behind the samples' encodes, which decide the choice
                return self._smallest(qq, orders, chained, row_align,
                                      then=lambda: ahead.start(qq, orders, chained, row_align))
        order, info = order_scene(q, tens, s.order, seed=s.seed, plas=s.plas, chain=s.chain, choose=choose,
                                  progress=lambda f: self._report("sort", f), segments=segments)
        return order, info, ahead

    def _smallest(self, q: QuantizedScene, orders: list[np.ndarray], chained: list[bool], row_align: int,
                  then: Optional[Callable[[], None]] = None) -> int:
        """The candidate order whose sampled images encode smallest with this encoder's settings,
        always through libwebp: the samples are small, where libwebp is fastest. `then`: run once
        the samples are queued (`encode_all`)."""
        webp = replace(self.settings.webp, encoder="libwebp")
        return smallest_by_sample(q, orders, lambda imgs, keys: encode_all(imgs, self.pool, webp, keys, then),
                                  chained, row_align)

    def _encode_final_images(self, q: QuantizedScene, webp: WebpSettings,
                             shape: tuple[int, int]) -> dict[str, Future]:
        """The images that are final once the order is: encoding starts while the palette fits."""
        images, _ = build_images(q, shape)
        return {name: self.pool.submit(encode_webp, img, webp, name, self.device) for name, img in images.items()}

    def _reference_renders(self, splats: Splats, tens: dict[str, torch.Tensor]) -> Future:
        """The render metric's cameras and renders of the input (every row of `tens`), started
        beside the next GPU stages: they depend on nothing those make."""
        m = self.render_metric

        def job() -> tuple[list, list, float]:
            t0 = time.perf_counter()
            cams = cameras_for(splats.means, m)
            return cams, render_scene(tens, cams, m.background, self.device, work_buffer=m.work_buffer), time.perf_counter() - t0

        if self.device.type == "cuda":
            return self._reference.submit(job, self.device)
        done: Future = Future()
        done.set_result(self._reference.run_here(job))
        return done

    def _fidelity(self, splats: Splats, tens: dict[str, torch.Tensor], order: np.ndarray,
                  q: QuantizedScene, kept_codes: bool, seconds: dict,
                  written: Optional[dict[str, torch.Tensor]] = None,
                  reference: Optional[Future] = None) -> dict:
        """The per-attribute errors of what a decoder will read back, on the device; with a
        render metric, PSNR/SSIM of the decoded output's renders against the input's
        (`reference`, `_reference_renders`), timed as "render": the output's renders and
        the scores, plus what the input's renders add to the wall time (their own seconds on a
        CPU, where they run first; on a GPU only the wait for them).
        `written`: the rows of `tens` that were written, when invisible ones were left out
        (`order` indexes them)."""
        order_t = torch.from_numpy(order).to(self.device)
        ordered = {k: v.index_select(0, order_t) for k, v in (tens if written is None else written).items()}
        decoded = dequantize_tensors(q, self.device)
        report = {"count_reference": splats.count, "count_decoded": q.count, "unmatched": 0}
        report.update(fidelity_tensors(ordered, decoded))
        if q.sh_bands and not kept_codes:
            report["sh_palette_inertia"] = q.sh_inertia
        if self.render_metric is not None and reference is not None:
            t0 = time.perf_counter()
            m = self.render_metric
            cams, ref_images, ref_seconds = reference.result()
            scores = score_views(ref_images, render_scene(decoded, cams, m.background, self.device,
                                                          work_buffer=m.work_buffer))
            report.update({k: scores[k] for k in SCORE_KEYS})
            report["render_size"] = m.size_label
            seconds["render"] = time.perf_counter() - t0 + (ref_seconds if self.device.type != "cuda" else 0.0)
        return report

    def _gpu_stages(self, splats: Splats, seconds: dict, with_fidelity: bool = True,
                    codes: Optional[QuantizedScene] = None,
                    segments: Optional[list[int]] = None, sog_input: bool = False
                    ) -> tuple[QuantizedScene, dict, dict[str, Future], dict, Optional[list[int]]]:
        """Under the GPU lock: quantize, order and hand the images that are final to the encode
        threads while the SH palette fits beside them; then attach the palette in the chosen
        order, number it, hand the rest of the images to the encode threads and report the
        fidelity while they encode (the render metric's renders overlap libwebp). With `codes`
        (a SOG v2 input's stored bytes) nothing is quantized: the codes and palette are kept and
        only ordered. Returns (ordered codes, report, name -> future of every image's encoding,
        meta.json's dict, the splats written per run)."""
        with self._gpu_lock, torch.no_grad():
            t0 = time.perf_counter()
            tens = self._to_device(splats)
            if codes is None and respell_rotations(self.settings.quality):
                # the same Gaussians, spelled for fewer bytes; the fidelity compares with these
                tens["quats"], tens["log_scales"] = respell_near_identity(tens["quats"], tens["log_scales"])
            fit = codes is None and tens["f_rest"].shape[1] > 0
            reference = self._reference_renders(splats, tens) if self.render_metric is not None and with_fidelity \
                else None
            # one weight per splat for the codebooks and the palette (`quantize.weights`)
            weights = splat_importance(tens["log_scales"], tens["opacity"]) if codes is None else None
            if fit:
                size = palette_size_for(splats.count, self.settings.quality)
            aside = self._palette.start(tens["f_rest"], weights, size) if fit and self.device.type == "cuda" else None
            try:
                q = self._quantize(tens, codes, weights, sog_input)
                # splats stored with opacity 0 are left out here, after the fits (`quantize.visibility`)
                rows = None
                if codes is None and segments is None:
                    rows = visible_rows(q.opacity_b, self.settings.quality)
                elif codes is None:          # a streamed file's runs: each keeps at least one splat
                    picked = visible_rows_in_runs(q.opacity_b, self.settings.quality, segments)
                    if picked is not None:
                        rows, segments = picked
                written = None
                if rows is not None:
                    q = q.take(rows, self.device)
                    rows_t = torch.from_numpy(rows).to(self.device)
                    written = {k: v.index_select(0, rows_t) for k, v in tens.items()}
                t1 = time.perf_counter()
                order, info, ahead = self._order(q, tens if written is None else written, segments)
                webp = self.settings.webp.for_order(info["chained"])
                if ahead is not None and ahead.taken(info["chosen"]):
                    q, shape, early = ahead.q, ahead.shape, ahead.futures
                    t2 = time.perf_counter()
                else:
                    q = apply_order(q, order, self.device)
                    t2 = time.perf_counter()
                    shape = grid_shape(q.count, info["row_align"])
                    early = self._encode_final_images(q, webp, shape)
            finally:
                t3 = time.perf_counter()
                fitted: Optional[Palette] = aside.result() if aside is not None else None   # never leave it running
            if fit and aside is None:
                fitted = self._palette.fit(tens["f_rest"], weights, size)
            # 'cluster': what the palette added to the wall time (on a GPU only the wait for the
            # k-means that ran beside quantize and sort), so the stages still sum to the total
            seconds["cluster"] = time.perf_counter() - t3
            if fitted is not None:     # fitted on every row: the written ones are rows[order]
                q = number_palette(with_palette(q, fitted, order if rows is None else rows[order]))
            images, meta = build_images(q, shape, skip=early)
            futures = {**early, **{name: self.pool.submit(encode_webp, img, webp, name, self.device)
                                   for name, img in images.items()}}
            report = (self._fidelity(splats, tens, order, q, codes is not None, seconds, written, reference)
                      if with_fidelity else {})
            self._sync()
            seconds["sort"] = t2 - t1
            seconds["quantize"] = ((t1 - t0) + (time.perf_counter() - t2) - seconds["cluster"]
                                   - seconds.get("render", 0.0))
            return q, report, futures, meta, segments

    # -- public ---------------------------------------------------------------------------------
    def encode(self, splats: Splats, seconds: Optional[dict] = None,
               with_fidelity: bool = True, codes: Optional[QuantizedScene] = None,
               sog_input: bool = False) -> tuple[SogPackage, dict]:
        """Splats -> SogPackage (sort, cluster, quantize, encode); returns it and the fidelity.
        `codes`: the stored codes of a SOG v2 input, kept as they are (only re-ordered).
        `sog_input`: the splats are a decoded SOG's, quantized again (`quality.position_drop_bits`)."""
        pkg, report, _ = self._encode(splats, seconds, with_fidelity, codes, None, sog_input)
        return pkg, report

    def encode_runs(self, splats: Splats, runs: list[int], seconds: Optional[dict] = None,
                    sog_input: bool = False) -> tuple[SogPackage, dict, list[int]]:
        """`encode` for splats that come as consecutive runs (a streamed file's leaves), each
        ordered on its own and kept in place; returns the package, the fidelity and the splats
        written per run (fewer than given where splats at opacity 0 were left out)."""
        pkg, report, written = self._encode(splats, seconds, True, None, list(runs), sog_input)
        return pkg, report, written

    def _encode(self, splats: Splats, seconds: Optional[dict], with_fidelity: bool,
                codes: Optional[QuantizedScene], segments: Optional[list[int]],
                sog_input: bool) -> tuple[SogPackage, dict, Optional[list[int]]]:
        seconds = {} if seconds is None else seconds
        if self.settings.sh_bands is not None:
            splats = splats.with_sh_degree(self.settings.sh_bands)
            codes = codes.with_sh_bands(self.settings.sh_bands) if codes is not None else None
        q, report, futures, meta, written = self._gpu_stages(splats, seconds, with_fidelity, codes, segments,
                                                             sog_input)
        t0 = time.perf_counter()
        files = {name: fut.result() for name, fut in futures.items()}
        # what is left of the encoding after the GPU stages (the first five images mostly
        # finished while the SH palette's k-means ran, the rest while the fidelity was measured)
        seconds["encode"] = time.perf_counter() - t0
        self._report("encode", 1.0)
        return SogPackage(meta=meta, files=files), report, written

    def compress(self, source: Union[str, bytes, SceneInput], output: Optional[str] = None,
                 name: Optional[str] = None, with_fidelity: bool = True,
                 writer: Optional[Callable[[SogPackage], int]] = None) -> CompressResult:
        """Compress a scene file of any supported format (path or bytes; see `readers`; or a scene
        already read, such as a SOG folder fetched from a store); write to
        `output` (.sog bundle or folder) when given, or through `writer` (returns the bytes
        written; the Ray actor's store), timed as "write"."""
        seconds: dict = {}
        edit = self.settings.edit
        t0 = time.perf_counter()
        scene = source if isinstance(source, SceneInput) else read_scene(source, name, edit.invalid)
        splats = scene.splats
        seconds["read"] = time.perf_counter() - t0
        self._report("read", 1.0)
        edits = EditReport(input_splats=splats.count + scene.dropped_invalid, dropped_invalid=scene.dropped_invalid,
                           applied=edit.summary())
        if edit.changes_splats:
            t_edit = time.perf_counter()
            label = name or (source if isinstance(source, str) else "scene")
            splats, edits = apply_edits(splats, edit, self.device, label, edits)
            seconds["edit"] = time.perf_counter() - t_edit
        codes = None if self.settings.requantize or edit.changes_splats else scene.codes
        pkg, report = self.encode(splats, seconds, with_fidelity, codes,
                                  sog_input=codes is None and is_sog_format(scene.format))
        # below level 100 the splats stored with opacity 0 are not written (`quantize.visibility`)
        written = int(pkg.meta["count"])
        edits.dropped_invisible = splats.count - written
        t1 = time.perf_counter()
        if writer is not None:
            out_bytes = writer(pkg)
        else:
            out_bytes = write_sog(pkg, output) if output else len(pkg.bundle_bytes())
        seconds["write"] = time.perf_counter() - t1
        seconds["total"] = time.perf_counter() - t0
        degree = splats.sh_degree if self.settings.sh_bands is None else min(splats.sh_degree, self.settings.sh_bands)
        return CompressResult(output=output, count=written, sh_degree=degree, input_bytes=scene.input_bytes,
                              output_bytes=out_bytes, seconds=seconds, fidelity=report,
                              device=self.device_name, package=pkg, input_format=scene.format,
                              kept_codes=codes is not None, edits=edits)


__all__ = ["Compressor", "CompressResult", "CompressSettings"]
