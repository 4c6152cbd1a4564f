"""Our streamed SOG against splat-transform's chunking of the same levels, on one CPU machine.

    python bench/streamed_vs_splat_transform.py SCENE.ply [--levels 3] [--chunk-k 32] [--json out.json]

We write SCENE as a streamed SOG (our decimation, tree and encoder); our levels, decoded back
to PLY, are then given to splat-transform 3.7.0 tagged with their level (`-l k`), which writes
its own lod-meta.json with the same chunk settings. Reported per side: seconds, files, total
bytes, splats per level. splat-transform re-encodes already-quantized values here, which can
only help it. Needs node and the pinned splat-transform (tests install it into .cache/).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sogs_core.pipeline.compressor import Compressor  # noqa: E402
from sogs_core.pipeline.streamed import write_streamed  # noqa: E402
from sogs_core.settings import ChunkOptions, StreamedSettings  # noqa: E402
from sogs_core.formats.ply.write import write_ply  # noqa: E402
from sogs_core.formats.lod_meta.read import read_lod_level, read_lod_meta  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ST = os.path.join(ROOT, ".cache", "splat-transform-3.7.0", "node_modules", ".bin", "splat-transform")


def tree_bytes(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scene")
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--chunk-k", type=float, default=32, help="chunk count in thousands, both sides")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="streamed-vs-st-")
    opts = ChunkOptions(chunk_count=int(a.chunk_k * 1024), chunk_extent=16.0, chunk_min=8 * 1024)
    t0 = time.perf_counter()
    with Compressor(device="cpu", warm=False) as comp:
        res = write_streamed(comp, [a.scene], os.path.join(work, "ours", "lod-meta.json"),
                             StreamedSettings(levels=a.levels, chunks=opts))
    ours_s = time.perf_counter() - t0
    level_files = []
    for k in range(a.levels):
        path = os.path.join(work, f"level{k}.ply")
        write_ply(path, read_lod_level(os.path.join(work, "ours", "lod-meta.json"), k))
        level_files += [path, "-l", str(k)]
    t1 = time.perf_counter()
    subprocess.run([ST, "-q", "-w", "-g", "cpu", *level_files, "--lod-chunk-count", f"{a.chunk_k:g}",
                    os.path.join(work, "theirs", "lod-meta.json")], check=True)
    theirs_s = time.perf_counter() - t1
    out = {}
    for side, secs in (("ours", ours_s), ("splat_transform", theirs_s)):
        folder = os.path.join(work, "ours" if side == "ours" else "theirs")
        meta = read_lod_meta(os.path.join(folder, "lod-meta.json"))
        out[side] = {"seconds": secs, "files": len(meta["filenames"]), "bytes": tree_bytes(folder),
                     "counts": meta.get("counts")}
    result = {"scene": a.scene, "levels": a.levels, "chunk_k": a.chunk_k, **out,
              "bytes_ratio": out["ours"]["bytes"] / out["splat_transform"]["bytes"]}
    print(json.dumps(result, indent=2))
    path = a.json or os.path.join(ROOT, "bench", "results",
                                  f"streamed_vs_st_{os.path.splitext(os.path.basename(a.scene))[0]}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
