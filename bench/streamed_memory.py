"""What holds a streamed write's GPU memory: one process's allocated bytes by phase, and what
holds them (issue 32's 16 GB bound).

    python bench/streamed_memory.py big.ply [--quality 80] [--decimation-splats N] [--json out.json]

A sampler thread reads the allocated and reserved bytes every 5 ms and notes which phases are
running then (the decimation `chunk.build_levels`, the GPU stages, a WebP encode, a palette fit
run in place), so each phase set gets its peak. Above 4 GB allocated while nothing but encodes
(or nothing at all) runs, it takes up to two snapshots of torch's allocation history and lists
the library lines that allocated what is live: memory held between files shows up there.
`--decimation-splats`: the most level-0 splats decimated in one call (default the library's).
Needs a CUDA device; the input is a PLY, e.g. the one `streamed_bench.py` writes.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from results_io import write_result  # noqa: E402  (bench/ is the script's own folder)

import torch  # noqa: E402

from sogs_core.pipeline import compressor as compressor_module  # noqa: E402
from sogs_core.pipeline.compressor import Compressor  # noqa: E402
from sogs_core.pipeline.palette_aside import PaletteAside  # noqa: E402
from sogs_core.pipeline.streamed import chunk, units, write_streamed  # noqa: E402
from sogs_core.settings import ChunkOptions, CompressSettings, StreamedSettings  # noqa: E402

GB = 2 ** 30
SNAPSHOT_ABOVE = 4 * GB


class Phases:
    """Which wrapped library functions are running now, over every thread."""

    def __init__(self) -> None:
        self.running: dict[str, int] = {}
        self.lock = threading.Lock()

    def wrap(self, owner, name: str, label: str) -> None:
        fn = getattr(owner, name)

        @functools.wraps(fn)
        def inner(*args, **kw):
            with self.lock:
                self.running[label] = self.running.get(label, 0) + 1
            try:
                return fn(*args, **kw)
            finally:
                with self.lock:
                    self.running[label] -= 1

        setattr(owner, name, inner)

    def now(self) -> str:
        with self.lock:
            return "+".join(sorted(k for k, v in self.running.items() if v > 0)) or "none"


def live_sites(top: int = 15) -> list[list]:
    """The library lines (up to three frames) that allocated the live blocks, largest first, GB."""
    by_site: dict[str, int] = {}
    for seg in torch.cuda.memory._snapshot()["segments"]:
        for block in seg["blocks"]:
            if block["state"] != "active_allocated":
                continue
            frames = [f for f in block.get("frames", []) if "sogs_core" in f["filename"]]
            site = " < ".join(f"{f['filename'].split('sogs_core/')[-1]}:{f['line']}:{f['name']}"
                              for f in frames[:3]) or "(outside the library)"
            by_site[site] = by_site.get(site, 0) + block["size"]
    return [[k, round(v / GB, 3)] for k, v in sorted(by_site.items(), key=lambda kv: -kv[1])[:top]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ply")
    ap.add_argument("--quality", type=int, default=80)
    ap.add_argument("--levels", type=int, default=4)
    ap.add_argument("--decimation-splats", type=int, default=None)
    ap.add_argument("--out", default="/tmp/streamed_memory_out", help="folder the streamed SOG is written to")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        ap.error("needs a CUDA device")
    dev = torch.device("cuda")
    phases = Phases()
    phases.wrap(chunk, "build_levels", "decimate")     # batched or not, every group's levels
    phases.wrap(Compressor, "_gpu_stages", "gpu_stages")
    phases.wrap(compressor_module, "encode_webp", "encode")
    phases.wrap(PaletteAside, "fit", "palette_fit")
    peaks: dict[str, list[int]] = {}
    snapshots: list[dict] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            allocated, reserved = torch.cuda.memory_allocated(dev), torch.cuda.memory_reserved(dev)
            key = phases.now()
            p = peaks.setdefault(key, [0, 0, 0])
            p[0], p[1], p[2] = max(p[0], allocated), max(p[1], reserved), p[2] + 1
            if (allocated > SNAPSHOT_ABOVE and key in ("none", "encode")
                    and sum(s["phases"] == key for s in snapshots) < 2):
                snapshots.append({"phases": key, "allocated_gb": round(allocated / GB, 2), "sites": live_sites()})
            time.sleep(0.005)

    torch.cuda.memory._record_memory_history(max_entries=200_000)
    comp = Compressor(device="cuda", settings=CompressSettings(quality=a.quality))
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    res = write_streamed(comp, [a.ply], os.path.join(a.out, "lod-meta.json"),
                         StreamedSettings(levels=a.levels, chunks=ChunkOptions()), processes=1,
                         decimation_splats=a.decimation_splats or units.DECIMATION_SPLATS)
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    result = {"input": a.ply, "quality": a.quality, "device": torch.cuda.get_device_name(dev),
              "decimation_splats": a.decimation_splats or units.DECIMATION_SPLATS, "seconds_wall": wall,
              "output_bytes": res.output_bytes, "peak_allocated_gb": round(torch.cuda.max_memory_allocated(dev) / GB, 2),
              "peak_reserved_gb": round(torch.cuda.max_memory_reserved(dev) / GB, 2),
              "by_phases": {k: {"allocated_gb": round(v[0] / GB, 2), "reserved_gb": round(v[1] / GB, 2), "samples": v[2]}
                            for k, v in sorted(peaks.items(), key=lambda kv: -kv[1][0])},
              "snapshots": snapshots}
    print(f"{wall:.1f} s, {res.output_bytes:,} B, peak {result['peak_allocated_gb']} GB allocated, "
          f"{result['peak_reserved_gb']} GB reserved")
    for k, v in result["by_phases"].items():
        print(f"  {k:<32} {v['allocated_gb']:6.2f} GB allocated {v['reserved_gb']:6.2f} GB reserved")
    for s in snapshots:
        print(f"  live at {s['allocated_gb']} GB ({s['phases']}):")
        for site, gb in s["sites"][:6]:
            print(f"    {gb:6.3f} GB  {site}")
    write_result(result, a.json, "streamed_memory.json")


if __name__ == "__main__":
    main()
