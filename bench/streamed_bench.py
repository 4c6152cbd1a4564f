"""A huge synthetic scene to a streamed SOG on one device: seconds, peak GPU memory, levels,
chunk groups and bytes, as JSON.

    python bench/streamed_bench.py --millions 32 --sh 3 [--work /tmp/streamed] [--json out.json]

The scene is written as one PLY in pieces (4M splats each, shifted apart along x so the scene
is wide as a real large capture is, and never held whole), then compressed with
`lod.write_streamed` exactly as `sogs-cluster compress big.ply out/lod-meta.json` does: the
PLY mapped and read by ranges, one chunk group at a time (two in flight).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from results_io import write_result  # noqa: E402  (bench/ is the script's own folder)

from sogs_core.pipeline.compressor import Compressor  # noqa: E402
from sogs_core.pipeline.process_server import start_early  # noqa: E402
from sogs_core.pipeline.streamed import write_streamed  # noqa: E402
from sogs_core.settings import ChunkOptions, CompressSettings, StreamedSettings, WebpSettings  # noqa: E402
from sogs_core.formats.ply.write import ply_bytes  # noqa: E402
from sogs_core.model.synth import synthetic_scene  # noqa: E402

PIECE = 4 << 20


def _piece_bytes(k: int, m: int, sh: int) -> bytes:
    """Piece k of a big PLY: m synthetic splats (seed k) shifted 40k units along x, as a PLY."""
    s = synthetic_scene(m, sh, seed=k)
    s.means[:, 0] += 40.0 * k
    return ply_bytes(s)


def _write_piece(path: str, k: int, m: int, sh: int, offset: int) -> int:
    """Piece k's rows written at `offset` of the file at `path` (its header left out)."""
    data = _piece_bytes(k, m, sh)
    rows = memoryview(data)[data.index(b"end_header\n") + len(b"end_header\n"):]
    fd = os.open(path, os.O_WRONLY)
    try:
        done = 0
        while done < len(rows):
            done += os.pwrite(fd, rows[done:], offset + done)
    finally:
        os.close(fd)
    return k


def write_big_ply(path: str, n: int, sh: int, workers: int | None = None) -> None:
    """n splats in pieces of PIECE, each a synthetic scene shifted 40 units further along x, the
    pieces made by up to `workers` processes at once (default: one per core, at most 8) and each
    written at its own offset: the same file as one process writes, in a fraction of the time
    (a 32M SH3 PLY took minutes of a device call's few)."""
    import multiprocessing

    pieces = [min(PIECE, n - s) for s in range(0, n, PIECE)]
    one = _piece_bytes(0, 1, sh)                      # the header and one row: the row size
    head_end = one.index(b"end_header\n") + len(b"end_header\n")
    row = len(one) - head_end
    header = one[:head_end].replace(b"element vertex 1\n", f"element vertex {n}\n".encode())
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(len(header) + row * n)
    offsets = [len(header) + row * sum(pieces[:k]) for k in range(len(pieces))]
    jobs = [(path, k, m, sh, off) for k, (m, off) in enumerate(zip(pieces, offsets))]
    workers = max(1, min(workers or min(os.cpu_count() or 1, 8), len(pieces)))
    if workers == 1:
        done = (_write_piece(*job) for job in jobs)
    else:
        pool = multiprocessing.get_context("spawn").Pool(workers)
        done = pool.starmap(_write_piece, jobs)
        pool.close()
        pool.join()
    for k in done:
        print(f"  piece {k + 1}/{len(pieces)} written", flush=True)


def scene_arguments(doc: str) -> tuple[argparse.Namespace, int, str]:
    """The options of a streamed benchmark (this one and `streamed_timeline.py`), and the big
    synthetic PLY they name, written on first use: (options, splats, path)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--millions", type=float, default=32)
    ap.add_argument("--sh", type=int, default=3)
    ap.add_argument("--levels", type=int, default=4)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--work", default="/tmp/streamed_bench")
    ap.add_argument("--memory-budget-mb", type=float, default=2048)
    ap.add_argument("--gpu-slots", type=int, default=1, help="callers inside the GPU stages at once (Compressor; each writing process takes the same)")
    ap.add_argument("--processes", type=lambda v: None if v == "auto" else int(v), default=1,
                    help="processes writing the streamed SOG together on the device (write_streamed(processes=)); "
                         "auto: as many as `compress` takes by default")
    ap.add_argument("--switch-interval-ms", type=float, default=None,
                    help="Python's GIL switch interval for the run (sys.setswitchinterval; Python's default 5 ms): "
                         "how long a thread back from a CUDA sync may wait for the interpreter")
    ap.add_argument("--render-metric", action="store_true",
                    help="after the write, render every level against the input (as compress --render-metric "
                         "does; needs the input read whole: raise --memory-budget-mb) and report the peak GPU "
                         "memory of the write and of the renders apart")
    ap.add_argument("--quality", type=int, default=100, help="--quality of every file (the CLI's default is 80)")
    ap.add_argument("--webp-encoder", default="auto", choices=["auto", "libwebp", "own"],
                    help="WebpSettings.encoder: which images our own (GPU) encoder writes")
    ap.add_argument("--own-from", nargs="*", default=[], metavar="IMAGE=TEXELS",
                    help="WebpSettings.own_from_texels entries replaced, e.g. sh0.webp=1000000000 (libwebp for sh0)")
    ap.add_argument("--device-slots", type=int, default=None,
                    help="images our encoder writes on the device at once (webp.codec.DEVICE_SLOTS; "
                         "this process only: not the children of --processes)")
    ap.add_argument("--decimation-splats", type=int, default=None,
                    help="level-0 splats decimated in one call at most, shared out between processes "
                         "(default the library's `units.DECIMATION_SPLATS`)")
    ap.add_argument("--process-gpu-mib", type=int, default=None,
                    help="write_streamed(process_gpu_mib=): each process's allocator cap on a GPU when several "
                         "write (default the library's `settings.PROCESS_GPU_MEMORY_MIB`; 0: no cap)")
    ap.add_argument("--write-here", choices=["auto", "on", "off"], default="auto",
                    help="with several processes, whether this one writes a run too (write_streamed's "
                         "write_here; auto: the library's default)")
    ap.add_argument("--mps", choices=["auto", "on", "off"], default="auto",
                    help="with several processes on a GPU, whether they share it through a private MPS server "
                         "(write_streamed's mps; auto: the library's default)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.switch_interval_ms is not None:
        sys.setswitchinterval(a.switch_interval_ms / 1000.0)
    n = int(a.millions * 1_000_000)
    os.makedirs(a.work, exist_ok=True)
    ply = os.path.join(a.work, f"synth_{n}_sh{a.sh}.ply")
    if not os.path.exists(ply):
        write_big_ply(ply, n, a.sh)
    return a, n, ply


def own_from(webp: WebpSettings, entries: list[str]) -> WebpSettings:
    """`webp` with the `--own-from` IMAGE=TEXELS entries in place of its own."""
    table = dict(webp.own_from_texels)
    for entry in entries:
        image, texels = entry.split("=")
        table[image] = int(texels)
    return dataclasses.replace(webp, own_from_texels=tuple(table.items()))


def render_levels(res, ply: str, device) -> tuple[list, float, int | None]:
    """Every level of the streamed output against the input read whole (issue 28's render metric on
    a streamed SOG): the scores, the seconds, the peak GPU memory of the renders alone."""
    import torch

    from sogs_core.formats import read_scene
    from sogs_core.pipeline.streamed.render_levels import level_render_scores

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    levels = level_render_scores(res.output, read_scene(ply).splats, device=device)
    wall = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    for lv in levels:
        print(f"  level {lv['level']}: {lv['count']:,} splats, render PSNR {lv['render_psnr']:.2f} dB", flush=True)
    return levels, wall, peak


def main() -> None:
    t0 = time.perf_counter()
    a, n, ply = scene_arguments(__doc__)
    gen = time.perf_counter() - t0
    if a.processes != 1:           # as the CLI does before its own imports (`process_server`)
        start_early()
    import torch

    if a.device_slots is not None:
        from sogs_core.webp import codec

        codec.DEVICE_SLOTS = a.device_slots
    comp = Compressor(device=a.device, gpu_slots=a.gpu_slots,
                      settings=CompressSettings(quality=a.quality, webp=own_from(WebpSettings(encoder=a.webp_encoder),
                                                                                 a.own_from)))
    if comp.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(comp.device)
    sampler = None
    if comp.device.type == "cuda":              # every process's memory, as nvidia-smi shows it
        from scaling_run import GpuSampler

        sampler = GpuSampler(1)
        sampler.start()
    t1 = time.perf_counter()
    timeline: list[tuple[float, int]] = []      # (seconds since the write began, groups done)

    def progress(done: int, total: int) -> None:
        timeline.append((round(time.perf_counter() - t1, 3), done))
        if done % 8 == 0 or done == total:
            print(f"  group {done}/{total}", flush=True)

    res = write_streamed(comp, [ply], os.path.join(a.work, "out", "lod-meta.json"),
                         StreamedSettings(levels=a.levels, chunks=ChunkOptions()),
                         memory_budget=int(a.memory_budget_mb * 2**20), processes=a.processes,
                         **({"decimation_splats": a.decimation_splats} if a.decimation_splats else {}),
                         **({"process_gpu_mib": a.process_gpu_mib} if a.process_gpu_mib is not None else {}),
                         **({"write_here": a.write_here == "on"} if a.write_here != "auto" else {}),
                         **({"mps": a.mps == "on"} if a.mps != "auto" else {}),
                         progress=progress)
    wall = time.perf_counter() - t1
    peak = torch.cuda.max_memory_allocated(comp.device) if comp.device.type == "cuda" else None
    smi_peak, util = None, None
    if sampler is not None:
        sampler.stop.set()
        smi_peak = max((row[0][1] for _, row in sampler.samples if 0 in row), default=None)
        busy = [row[0][0] for _, row in sampler.samples if 0 in row]
        # nvidia-smi's utilization: the share of its sample period in which a kernel ran
        util = {"mean": sum(busy) / len(busy), "samples": len(busy),
                "share_at_90": sum(u >= 90 for u in busy) / len(busy)} if busy else None
    levels, render_wall, render_peak = None, None, None
    if a.render_metric:
        levels, render_wall, render_peak = render_levels(res, ply, comp.device)
    result = {"splats": n, "sh": a.sh, "quality": a.quality, "webp_encoder": a.webp_encoder, "own_from": a.own_from, "device_slots": a.device_slots, "gpu_slots": a.gpu_slots, "decimation_splats": a.decimation_splats, "process_gpu_mib": a.process_gpu_mib, "write_here": a.write_here, "processes": res.processes, "mps": res.mps, "device": comp.device_name, "host": platform.node(),
              "input_bytes": res.input_bytes, "output_bytes": res.output_bytes, "counts": res.counts,
              "groups": res.groups, "files": res.files, "ranged": res.ranged, "seconds_wall": wall,
              "group_timeline": timeline,
              "seconds_generate": gen, "seconds_before_write": t1 - t0 - gen, "stage_seconds_summed": res.seconds, "peak_gpu_bytes": peak,
              "gpu_mem_max_mib_nvidia_smi": smi_peak, "gpu_utilization": util,
              "fidelity": res.fidelity, "render_levels": levels, "seconds_render": render_wall,
              "peak_gpu_bytes_render": render_peak}
    print(json.dumps(result, indent=2))
    write_result(result, a.json, f"streamed_{a.millions:g}M_sh{a.sh}.json")
    comp.close()


if __name__ == "__main__":
    main()
