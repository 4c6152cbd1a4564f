"""Read speed of every input format: one synthetic scene written in each, read back by our readers.

    python bench/read_bench.py [--n 1000000] [--sh 3] [--repeat 3] [--threads 1] [--json out.json]

The scene comes from ../shared/bench/synth_scene.py when present (tests/conftest.make_scene);
PLY is written by us, compressed PLY and SPZ (v3, v4) by splat-transform (the copy the tests
install), .splat / .ksplat / SPZ v2 by the tests' fixture writers, SOG v2 by our compressor.
Files are cached under .cache/read_bench/ (splat-transform takes a while at 1M). Reported: the
best of --repeat of `read_scene` on bytes already in memory (decode only) and from the file,
on --threads CPU threads (torch and BLAS; our readers are numpy). JSON: default
bench/results/read_bench.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
ST = os.path.join(ROOT, ".cache", "splat-transform-3.7.0", "node_modules", ".bin", "splat-transform")


def build(folder: str, n: int, sh: int) -> dict[str, str]:
    """format label -> path, writing what is missing."""
    from sogs_core.pipeline.compressor import Compressor
    from sogs_core.formats.ply.write import write_ply
    from tests.conftest import make_scene
    from tests.format_writers import ksplat_bytes, splat_bytes, spz_v2_bytes

    os.makedirs(folder, exist_ok=True)
    stem = os.path.join(folder, f"n{n}_sh{sh}")
    paths = {"ply": stem + ".ply", "compressed-ply": stem + ".compressed.ply", "spz-v4": stem + ".v4.spz",
             "spz-v3": stem + ".v3.spz", "spz-v2": stem + ".v2.spz", "splat": stem + ".splat",
             "ksplat-0": stem + ".m0.ksplat", "ksplat-2": stem + ".m2.ksplat", "sog-v2": stem + ".sog"}
    scene = None
    if not all(os.path.exists(p) for p in paths.values()):
        scene = make_scene(n, sh, seed=7)
    if not os.path.exists(paths["ply"]):
        write_ply(paths["ply"], scene)

    def st(*args: str) -> None:
        if not os.path.exists(ST):
            raise SystemExit(f"{ST} missing: run the tests once (they install splat-transform)")
        subprocess.run([ST, "-q", "-w", "-g", "cpu", *args], check=True)

    for label, extra in (("compressed-ply", ()), ("spz-v4", ()), ("spz-v3", ("--spz-version", "3"))):
        if not os.path.exists(paths[label]):
            st(*extra, paths["ply"], paths[label])
    writers = {"spz-v2": lambda: spz_v2_bytes(scene), "splat": lambda: splat_bytes(scene.with_sh_degree(0)),
               "ksplat-0": lambda: ksplat_bytes(scene, 0, bucket_capacity=256),
               "ksplat-2": lambda: ksplat_bytes(scene, 2, bucket_capacity=256)}
    for label, write in writers.items():
        if not os.path.exists(paths[label]):
            with open(paths[label], "wb") as f:
                f.write(write())
    if not os.path.exists(paths["sog-v2"]):
        with Compressor(device="cpu", warm=False) as comp:
            comp.compress(paths["ply"], paths["sog-v2"])
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--sh", type=int, default=3, choices=[0, 1, 2, 3])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default=os.path.join(ROOT, ".cache", "read_bench"))
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "read_bench.json"))
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    from sogs_core.formats import read_scene

    paths = build(a.cache, a.n, a.sh)
    rows = []
    print(f"{'format':<16}{'MB':>9}{'decode s':>10}{'file s':>9}{'M splats/s':>12}")
    for label, path in paths.items():
        with open(path, "rb") as f:
            data = f.read()
        t_mem, t_file = [], []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            scene = read_scene(data, path)
            t_mem.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            read_scene(path)
            t_file.append(time.perf_counter() - t0)
        row = {"format": label, "detected": scene.format, "bytes": len(data), "splats": scene.splats.count,
               "sh_degree": scene.splats.sh_degree, "decode_seconds": min(t_mem), "file_seconds": min(t_file)}
        rows.append(row)
        print(f"{label:<16}{len(data) / 1e6:9.1f}{row['decode_seconds']:10.3f}{row['file_seconds']:9.3f}"
              f"{scene.splats.count / row['decode_seconds'] / 1e6:12.2f}")
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump({"n": a.n, "sh": a.sh, "threads": a.threads, "machine": platform.processor() or platform.machine(),
                   "cpus": os.cpu_count(), "rows": rows}, f, indent=2)
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
