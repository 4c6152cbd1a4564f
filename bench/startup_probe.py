"""Where a writing process's first seconds go (issue 32): spawns processes as `WritingProcesses`
does and stamps, against the parent's start, the import of torch and the library, the CUDA
context, the compressor, its warm-up, and two compressions of one 540k-splat chunk group (the
first pays what was not warmed). `python bench/startup_probe.py [--processes 3] [--sh 3]
[--no-warm] [--json OUT]`."""
from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time


def _probe(t0: float, device: str, sh: int, warm: bool, out) -> None:
    stamps = [("spawned", time.time() - t0)]
    import torch
    stamps.append(("import torch", time.time() - t0))
    from sogs_core.model.synth import synthetic_scene
    from sogs_core.pipeline.compressor import Compressor
    from sogs_core.pipeline.streamed.chunk import build_levels
    from sogs_core.settings import CompressSettings
    stamps.append(("import sogs_core", time.time() - t0))
    if device.startswith("cuda"):
        torch.zeros(1, device=device)
        stamps.append(("cuda context", time.time() - t0))
    comp = Compressor(device=device, settings=CompressSettings(quality=80), warm=False)
    stamps.append(("compressor", time.time() - t0))
    if warm:
        comp.warm_up()
        stamps.append(("warm_up", time.time() - t0))
    scene = synthetic_scene(540_000, sh, 3)
    sizes = [540_000 // 64] * 63 + [540_000 - 63 * (540_000 // 64)]
    stamps.append(("scene made", time.time() - t0))
    for k in range(2):
        with torch.no_grad():
            build_levels(scene, sizes, 4, comp.device)
        if comp.device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append((f"levels {k + 1}", time.time() - t0))
        comp.encode_runs(scene, sizes, {})
        stamps.append((f"level-0 file {k + 1}", time.time() - t0))
    comp.close()
    out.put(stamps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--sh", type=int, default=3)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--no-warm", action="store_true")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    t0 = time.time()
    procs = [ctx.Process(target=_probe, args=(t0, a.device, a.sh, not a.no_warm, out)) for _ in range(a.processes)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    for stamps in results:
        print("  ".join(f"{name} {t:.2f}" for name, t in stamps), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"processes": a.processes, "warm": not a.no_warm, "stamps": results}, f, indent=1)


if __name__ == "__main__":
    sys.path.insert(0, ".")
    main()
