"""The Ray actor: one warm `Compressor` per GPU (or CPU slot), compressing scenes it is handed.

Why an actor: CUDA context, PLAS buffers and the WebP thread pool are built once, not per scene.
The actor runs two calls at once (max_concurrency=2): the Compressor's GPU lock lets one scene's
download, PLY parse and WebP encode overlap the next scene's sort and k-means. Every error
becomes a `failed` row (errors are values); bad input is not retried, anything else is, up to
the job's --max-retries.
"""
from __future__ import annotations

import errno
import os
import socket
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Optional

from ray_jobs.manifest import actor_row_uri, failed_row, mark_below_min, ok_row, rows_object, task_row, utcnow
from ray_jobs.storage import Store

if TYPE_CHECKING:
    from sogs_core.settings import CompressSettings

#: write errors that retrying at once cannot fix (full disk, quota, read-only, denied, too large)
OUTPUT_REFUSED = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


class SceneCompressor:
    """Plain class; backfill.py wraps it with ray.remote(num_gpus=..., max_concurrency=2)."""

    def __init__(self, device: str, settings: "CompressSettings", layout: str, run_id: str, settings_hash: str,
                 max_retries: int, s3_retry_seconds: float = 120.0, render_metric: Optional[bool] = False,
                 manifest: Optional[str] = None, min_psnr: Optional[float] = None,
                 max_scene_splats: Optional[int] = None) -> None:
        """render_metric: `process` also renders each scene's input and output with our
        rasterizer (`RenderMetricSettings.for_device` of this actor's device: 8 views at 512x512
        on a GPU, 4 at 128x128 on a CPU; None: only where this actor's device is a GPU) and its row gets render_psnr, render_ssim,
        render_psnr_worst_view and seconds_render; a streamed scene's level 0 is scored by
        `streamed_render` when its input is read whole.
        manifest: the run's manifest prefix; `process` then makes each row durable there itself,
        right after the output (`_make_durable`), marked against `min_psnr` (--min-psnr).
        max_scene_splats: --max-scene-splats, for this actor's readers."""
        import copy

        from sogs_core.pipeline.compressor import Compressor
        from sogs_core.render.score import RenderMetricSettings

        self.layout, self.run_id, self.settings_hash = layout, run_id, settings_hash
        self.max_retries = max_retries
        self.manifest, self.min_psnr = manifest, min_psnr
        if max_scene_splats is not None:
            from sogs_core.formats.checks import set_max_scene_splats

            set_max_scene_splats(max_scene_splats)
        self._row_seq = 0
        self._row_lock = threading.Lock()
        # rows are written by their own thread, beside the next scene's work: a Parquet object
        # per scene on the scene's own path cost 15 % of a run of 3,000 tiny scenes (NOTES)
        self._row_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sogs-rows")
        self._writer_tag = f"{os.getpid()}-{os.urandom(4).hex()}"
        self.store = Store(retry_seconds=s3_retry_seconds)
        # streamed scenes (compress_groups, compress_bucket, plan_streamed) use this one, without
        # the metric: it would render every chunk group, and a max over groups means nothing
        self.compressor = Compressor(device=device, settings=settings)
        # whole scenes (`process`): the same compressor (device, settings, encode pool, GPU lock,
        # palette fitter: all shared by the shallow copy) with the render metric on
        self.scene_compressor = self.compressor
        metric = RenderMetricSettings.if_wanted(render_metric, self.compressor.device)
        if metric is not None:
            self.scene_compressor = copy.copy(self.compressor)
            self.scene_compressor.render_metric = metric
        self._source_lock = threading.Lock()
        self._open: Optional[tuple] = None          # (scene key, LevelSources, downloaded file)
        self.node = socket.gethostname()
        try:
            import ray

            if ray.is_initialized():      # outside Ray (a test, a tool) asking would start a local Ray
                self.node = f"{self.node}/{ray.get_runtime_context().get_node_id()[:8]}"
        except Exception:
            pass

    def ready(self) -> str:
        return f"{self.node} {self.compressor.device_name}"

    def _write(self, pkg, output_uri: str) -> int:
        """The package to the store: one bundle object, or a folder by sog_files' protocol."""
        if self.layout == "bundle":
            data = pkg.bundle_bytes()
            self.store.put(output_uri, data)
            return len(data)
        return self._write_folder(pkg, output_uri)

    def _write_folder(self, pkg, folder_uri: str) -> int:
        from sogs_core.formats.sog.package import write_folder_with

        folder = folder_uri.rstrip("/")
        return write_folder_with(pkg, lambda name, data: self.store.put(f"{folder}/{name}", data),
                                 lambda name: self.store.exists(f"{folder}/{name}"),
                                 lambda name: self.store.delete(f"{folder}/{name}"))

    # -- streamed SOG: one scene's chunk groups spread over the actors (ray_jobs/streamed.py) ------
    def _sources(self, task: dict, memory_budget: int) -> list:
        """The scene's LevelSource, opened once per actor and scene (a PLY stays mapped, so each
        chunk group reads only its own rows); an S3 input is downloaded to this node first."""
        from sogs_core.pipeline.streamed.plan import LevelSource

        key = (task["input_uri"], task["etag"])
        with self._source_lock:
            if self._open is None or self._open[0] != key:
                if self._open is not None and self._open[2]:
                    _remove_quietly(self._open[2])       # the last scene's download (a mapping stays valid)
                path, downloaded = self._localize(task)
                self._open = (key, [LevelSource(path, memory_budget, name=task["input_uri"])],
                              path if downloaded else None)
            return self._open[1]

    def _localize(self, task: dict) -> tuple[str, bool]:
        import hashlib
        import tempfile

        from ray_jobs.storage import is_s3

        uri = task["input_uri"]
        if not is_s3(uri):
            return uri, False
        tag = hashlib.sha1(f"{uri}|{task['etag']}".encode()).hexdigest()[:20]
        path = os.path.join(tempfile.gettempdir(), "sogs-cluster-inputs", tag + os.path.splitext(uri)[1])
        if not os.path.exists(path):
            self.store.download(uri, path)
        return path, True

    def plan_streamed(self, task: dict, lod: dict, memory_budget: int) -> dict:
        """The chunk tree and groups of a streamed scene (`plan_streamed`) and what its row needs."""
        from sogs_core.settings import ChunkOptions, StreamedSettings
        from sogs_core.pipeline.streamed.plan import plan_streamed
        from sogs_core.pipeline.streamed.units import groups_per_decimation

        t0 = time.perf_counter()
        sources = self._sources(task, memory_budget)
        plan = plan_streamed(sources, StreamedSettings(levels=lod["levels"], chunks=ChunkOptions(**lod["chunks"])),
                             self.compressor.device)
        src = sources[0]
        degree = src.splats.sh_degree if src.splats is not None else src.rows.n_rest // 3
        return {"plan": plan, "format": src.format, "input_bytes": src.input_bytes, "ranged": src.ranged,
                "sh_degree": degree, "seconds": time.perf_counter() - t0, "where": self.ready(),
                "groups_per_call": groups_per_decimation(self.compressor.device)}

    def compress_groups(self, task: dict, specs: list, levels: int, memory_budget: int):
        """Chunk groups of a streamed scene in one call: their coarser levels made by one
        decimation call (`run_groups`: on a GPU several groups cost little more than one), each
        group's level 0 written under the output. Returns the results (a list in the order of
        `specs`) and, as separate objects (called with num_returns = 1 + len(specs) x (levels - 1)),
        each group's coarser levels' splats, group after group, for the buckets that pack them."""
        from sogs_core.pipeline.streamed.units import run_groups

        results = run_groups(self.compressor, list(specs), self._sources(task, memory_budget), levels,
                             self._folder_writer(task))
        coarse: list = []
        for res in results:
            res.worker = f"{self.node} pid {os.getpid()}"
            coarse.extend(res.coarse)
            res.coarse = []
        return (results, *coarse) if levels > 1 else results

    def compress_bucket(self, task: dict, level: int, bucket: int, leaves: list, *coarse):
        """Level `level`'s runs of a bucket's groups (their splats resolved by Ray from the
        groups' returns, in group order) written as one SOG folder."""
        from sogs_core.pipeline.streamed.chunk import compress_bucket

        parts = [(lv, splats, counts) for lv, (splats, counts) in zip(leaves, coarse)]
        res = compress_bucket(self.compressor, level, bucket, parts, self._folder_writer(task))
        return res

    def streamed_render(self, task: dict, level0: list[str], memory_budget: int) -> Optional[dict]:
        """A streamed scene's level 0 (its files `level0`, every one holding level-0 runs only)
        against the input, by the render metric as `process` scores a single SOG: render_psnr,
        render_ssim, render_psnr_worst_view and the seconds it took. {} with the metric off on
        this actor; None where the input is read by ranges (the metric renders it whole, as
        `compress` does)."""
        from sogs_core.model.splats import Splats
        from sogs_core.render.score import SCORE_KEYS, render_pair, score_views

        metric = self.scene_compressor.render_metric
        if metric is None:
            return {}
        source = self._sources(task, memory_budget)[0]
        if source.ranged or source.splats is None:
            return None
        t0 = time.perf_counter()
        reference = source.splats
        bands = self.compressor.settings.sh_bands
        if bands is not None:
            reference = reference.with_sh_degree(bands)
        written = Splats.concat([self._fetch(uri)[0].splats for uri in level0])
        scores = score_views(*render_pair(reference.means, reference, written, metric, self.compressor.device))
        return {**{k: scores[k] for k in SCORE_KEYS}, "seconds": time.perf_counter() - t0}

    def _folder_writer(self, task: dict):
        folder = task["output_uri"].rsplit("/", 1)[0]
        return lambda name, pkg: self._write_folder(pkg, f"{folder}/{name}")

    def _fetch(self, uri: str):
        """(the input's bytes, their ETag); for a SOG folder (its meta.json) the scene read with
        the files that meta.json names, fetched from beside it, and meta.json's ETag."""
        data, etag = self.store.get_versioned(uri)
        if uri.rsplit("/", 1)[-1].lower() != "meta.json":
            return data, etag
        from sogs_core.formats import read_sog_folder

        folder = uri.rsplit("/", 1)[0]

        def get(name: str):
            found = self.store.get_with_etag(f"{folder}/{name}")      # one request; None when absent
            return None if found is None else found[0]

        return read_sog_folder(data, get, uri), etag

    def process(self, task: dict, attempt_offset: int = 0) -> dict:
        """Compress one scene; never raises for a scene's own failure."""
        from sogs_core.model.errors import SogsError

        row = task_row(task, self.run_id, self.settings_hash, node=self.node, gpu=self.compressor.device_name,
                       started_at=utcnow(), quality=self.compressor.settings.quality,
                       edits=self.compressor.settings.edit.summary() or None)
        attempts = attempt_offset
        while True:
            attempts += 1
            fetched = False
            try:
                t0 = time.perf_counter()
                data, etag = self._fetch(task["input_uri"])
                fetched = True
                row["input_etag"] = etag          # the version compressed, whatever the listing saw
                fetch = time.perf_counter() - t0
                res = self.scene_compressor.compress(data, name=task["input_uri"],
                                                     writer=lambda pkg: self._write(pkg, task["output_uri"]))
                seconds = dict(res.seconds)
                seconds["read"] += fetch          # the download counts as reading
                seconds["total"] += fetch
                ok_row(row, seconds, res.fidelity, splats=res.count, output_bytes=res.output_bytes,
                       input_format=res.input_format, input_bytes=res.input_bytes, sh_degree=res.sh_degree,
                       ratio=res.ratio or None, dropped_invalid=res.edits.dropped_invalid,
                       dropped_filter=res.edits.dropped_filter, merged_budget=res.edits.merged_budget,
                       dropped_invisible=res.edits.dropped_invisible)
                break
            except SogsError as exc:          # bad input: retrying cannot help
                failed_row(row, exc, str(exc))
                break
            except Exception as exc:          # transient or resource trouble: retry, then give up
                if not fetched and _is_missing(exc):
                    # deleted (or renamed) after the listing: no retry brings it back
                    failed_row(row, exc, f"{task['input_uri']}: the input is gone (deleted after it was listed); "
                                         "not retried", error_class="InputVanished")
                    break
                if isinstance(exc, OSError) and exc.errno in OUTPUT_REFUSED:
                    # a full disk, a denied write: the same write would fail again right now
                    where = exc.filename or task["output_uri"]
                    failed_row(row, exc, f"{where}: {exc.strerror or exc}")
                    break
                if _is_oom(exc):
                    _free_gpu_memory()
                if attempts <= self.max_retries:
                    time.sleep(min(2 ** attempts, 30) * 0.1)
                    continue
                failed_row(row, exc, f"{exc}".strip() or traceback.format_exc(limit=3))
                break
        row.update(attempts=attempts, finished_at=utcnow())
        self._make_durable(row)
        return row

    def _make_durable(self, row: dict) -> None:
        """The row as its own manifest object (with the run's manifest prefix), written by the row
        thread as the scene is handed back: a driver that dies after the output was written still
        leaves its row. Its URI goes back in row["journal_uri"]; the driver keeps the row too and
        writes it into its next part (so a write that fails loses nothing the driver lives to
        compact), then deletes the object."""
        if self.manifest is None:
            return
        mark_below_min(row, self.min_psnr)
        with self._row_lock:
            seq = self._row_seq
            self._row_seq += 1
        uri = actor_row_uri(self.manifest, self.run_id, self._writer_tag, seq)
        self._row_writer.submit(self._put_row, uri, dict(row))
        row["journal_uri"] = uri

    def _put_row(self, uri: str, row: dict) -> None:
        try:
            self.store.put(uri, rows_object([row]))
        except Exception:
            pass                          # the driver's part holds the row

    def flush_rows(self) -> None:
        """Wait until every row handed to the row thread is written (tests; an actor's end)."""
        self._row_writer.submit(lambda: None).result()


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _is_missing(exc: BaseException) -> bool:
    """Whether reading an input failed because it is not there (a local file or an S3 key)."""
    if isinstance(exc, FileNotFoundError):
        return True
    response = getattr(exc, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


def _is_oom(exc: BaseException) -> bool:
    return "out of memory" in str(exc).lower() or type(exc).__name__ == "OutOfMemoryError"


def _free_gpu_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        pass
