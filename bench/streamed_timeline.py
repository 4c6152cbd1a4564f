"""Where a streamed SOG's wall time goes: one `write_streamed` run on a timeline (issue 32).

    python bench/streamed_timeline.py --millions 32 --sh 3 [--work DIR] [--json out.json]

Spans on the wall clock, per thread: the GPU lock held and waited for, the decimation, the
steps inside the GPU stages, every WebP encode (texels, encoder), range reads, folder writes,
the SH palette's k-means; on a GPU the device's utilisation sampled every 50 ms. The summary
says how much of the wall the lock was held (the serial part), how busy the encoders were,
and what the GPU did meanwhile. Same scene as `streamed_bench.py` (its PLY is reused).
"""
from __future__ import annotations

import json
import functools
import os
import platform
import sys
import threading
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from results_io import write_result  # noqa: E402  (bench/ is the script's own folder)
from streamed_bench import scene_arguments  # noqa: E402

import torch  # noqa: E402

from sogs_core.pipeline import compressor as comp_mod  # noqa: E402
from sogs_core.pipeline import palette_aside as aside_mod  # noqa: E402
from sogs_core.pipeline.streamed import chunk as chunk_mod  # noqa: E402
from sogs_core.pipeline.streamed import plan as plan_mod  # noqa: E402
from sogs_core.pipeline.streamed import units as units_mod  # noqa: E402
from sogs_core.pipeline.streamed import write as write_mod  # noqa: E402
from sogs_core.pipeline.compressor import Compressor  # noqa: E402
from sogs_core.settings import ChunkOptions, CompressSettings, StreamedSettings  # noqa: E402

#: (module, name) timed as spans where they are looked up
SPANS = [
    (chunk_mod, "build_levels"), (chunk_mod, "leaf_bounds"), (comp_mod, "quantize_splats"),
    (comp_mod, "order_scene"), (comp_mod, "apply_order"), (comp_mod, "build_images"),
    (comp_mod, "with_palette"), (comp_mod, "number_palette"), (comp_mod, "fidelity_tensors"),
    (comp_mod, "dequantize_tensors"), (comp_mod, "respell_near_identity"), (comp_mod, "splat_importance"),
    (aside_mod, "fit_palette"), (units_mod, "write_folder"),
]


class Timeline:
    def __init__(self) -> None:
        self.spans: list[dict] = []
        self.lock = threading.Lock()
        self.t0 = time.perf_counter()

    def add(self, name: str, a: float, b: float, **extra) -> None:
        with self.lock:
            self.spans.append({"name": name, "thread": threading.current_thread().name,
                               "start": a - self.t0, "end": b - self.t0, **extra})

    def wrap(self, name: str, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            a = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(name, a, time.perf_counter())
        return wrapper

    def webp(self, fn):
        @functools.wraps(fn)
        def wrapper(img, settings, name="", device=None, *args, **kwargs):
            a = time.perf_counter()
            out = fn(img, settings, name, device, *args, **kwargs)
            self.add("webp", a, time.perf_counter(), image=name, texels=int(img.shape[0] * img.shape[1]),
                     encoder=getattr(settings, "encoder", ""), bytes=len(out))
            return out
        return wrapper


class TimedLock:
    """The compressor's GPU slots (`Compressor.gpu_lock`), recording each wait and each hold."""

    def __init__(self, inner: threading.BoundedSemaphore, tl: Timeline) -> None:
        self.inner, self.tl, self.local = inner, tl, threading.local()

    def __enter__(self):
        a = time.perf_counter()
        self.inner.acquire()
        b = time.perf_counter()
        self.tl.add("lock_wait", a, b)
        self.local.since = b
        return self

    def __exit__(self, *exc):
        self.tl.add("lock_held", self.local.since, time.perf_counter())
        self.inner.release()


def union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, -1e18
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def sample_gpu(device: torch.device, stop: threading.Event, out: list) -> None:
    t0 = time.perf_counter()
    while not stop.is_set():
        try:
            out.append((time.perf_counter() - t0, torch.cuda.utilization(device),
                        torch.cuda.memory_reserved(device)))
        except Exception:  # noqa: BLE001  (no NVML: no samples)
            return
        stop.wait(0.05)


def main() -> None:
    a, n, ply = scene_arguments(__doc__)
    comp = Compressor(device=a.device, gpu_slots=a.gpu_slots, settings=CompressSettings(quality=a.quality))
    tl = Timeline()
    comp._gpu_lock = TimedLock(comp._gpu_lock, tl)
    for mod, name in SPANS:
        setattr(mod, name, tl.wrap(name, getattr(mod, name)))
    comp_mod.encode_webp = tl.webp(comp_mod.encode_webp)
    gather = plan_mod.LevelSource.gather
    plan_mod.LevelSource.gather = tl.wrap("gather", gather)
    samples: list = []
    stop = threading.Event()
    sampler = None
    if comp.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(comp.device)
        sampler = threading.Thread(target=sample_gpu, args=(comp.device, stop, samples), daemon=True)
        sampler.start()
    tl.t0 = time.perf_counter()
    res = write_mod.write_streamed(comp, [ply], os.path.join(a.work, "out", "lod-meta.json"),
                                   StreamedSettings(levels=a.levels, chunks=ChunkOptions()),
                                   memory_budget=int(a.memory_budget_mb * 2**20),
                                   **({"decimation_splats": a.decimation_splats} if a.decimation_splats else {}))
    wall = time.perf_counter() - tl.t0
    stop.set()
    if sampler is not None:
        sampler.join()
    by: dict[str, list] = defaultdict(list)
    for s in tl.spans:
        by[s["name"]].append((s["start"], s["end"]))
    summary = {name: {"count": len(v), "summed": sum(b - a for a, b in v), "union": union(v)}
               for name, v in sorted(by.items())}
    webp_by_size: dict[str, list] = defaultdict(list)
    for s in tl.spans:
        if s["name"] == "webp":
            webp_by_size[f"{s['encoder']}:{s['image']}"].append((s["texels"], s["end"] - s["start"]))
    busy = [u for _, u, _ in samples]
    result = {"splats": n, "sh": a.sh, "quality": a.quality, "decimation_splats": a.decimation_splats, "device": comp.device_name, "host": platform.node(),
              "cpus": os.cpu_count(), "seconds_wall": wall, "groups": res.groups, "files": res.files,
              "output_bytes": res.output_bytes, "stage_seconds_summed": res.seconds, "spans_summary": summary,
              "webp_by_image": {k: {"count": len(v), "texels": sum(t for t, _ in v), "seconds": sum(s for _, s in v)}
                                for k, v in sorted(webp_by_size.items())},
              "gpu_util_mean": sum(busy) / len(busy) if busy else None,
              "gpu_busy_fraction": sum(1 for u in busy if u > 0) / len(busy) if busy else None,
              "peak_gpu_bytes": torch.cuda.max_memory_allocated(comp.device) if comp.device.type == "cuda" else None,
              "spans": tl.spans, "gpu_samples": samples}
    print(json.dumps({k: v for k, v in result.items() if k not in ("spans", "gpu_samples")}, indent=1))
    write_result(result, a.json, f"streamed_timeline_{a.millions:g}M_sh{a.sh}.json")
    comp.close()


if __name__ == "__main__":
    main()
