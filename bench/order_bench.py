"""Bytes and seconds of each splat order on real scenes: the figure of merit of `--order`.

    python bench/order_bench.py ../shared/scenes/sog_refs/playbot_0_0 biker.ply guitar.ply \
        [--methods chain,hilbert,morton,plas] [--synth 1048576] [--device auto] [--json out.json]

Each scene (a PLY, a .sog bundle or a SOG folder) is read and quantized once (same codebooks and
SH palette for every method), then each method orders it, the SH palette is numbered along the
order, and every image is encoded with the compressor's WebP settings: total bytes, bytes per
image, the ratio to the Morton order and the order's seconds (device synchronised). For `chain`
the candidates are also encoded in full, to show what the sampled choice picked and what it
left. `--synth N` adds a synthetic SH3 scene (../shared/bench/synth_scene.py) of N splats, for
time. The figure of merit is the sum of total bytes over the real scenes. JSON: default
bench/results/order_bench.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sogs_core.settings import CompressSettings  # noqa: E402
from sogs_core.model.device import device_label, resolve_device  # noqa: E402
from sogs_core.model.splats import ATTRIBUTES  # noqa: E402
from sogs_core.order import order_scene  # noqa: E402
from sogs_core.quantize.palette.numbering import apply_order  # noqa: E402
from sogs_core.settings import ORDER_METHODS  # noqa: E402
from sogs_core.order.chain import chain_chunk, chain_orders  # noqa: E402
from sogs_core.pipeline.choose_order import smallest_by_sample  # noqa: E402
from sogs_core.formats.ply.read import read_ply  # noqa: E402
from sogs_core.formats.sog.codes import QuantizedScene  # noqa: E402
from sogs_core.quantize.scene import quantize_scene  # noqa: E402
from sogs_core.formats.sog.layout import SQUARE_ALIGN, build_images, grid_shape  # noqa: E402
from sogs_core.formats.sog.read import read_sog  # noqa: E402
from sogs_core.model.splats import Splats  # noqa: E402
from sogs_core.webp.codec import encode_all  # noqa: E402



def load(path: str) -> Splats:
    if path.lower().endswith(".ply"):
        return read_ply(path)
    return read_sog(path)


def synth(n: int, script: str) -> Splats:
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    from synth_scene import synth_scene  # type: ignore

    s = synth_scene(n, seed=7, sh_degree=3)
    f = np.float32
    return Splats(s["pos"].astype(f), s["rot"].astype(f), s["scale"].astype(f), s["f_dc"].astype(f),
                  s["opacity"].astype(f), s["f_rest"].astype(f))


def sizes(q: QuantizedScene, pool, settings: CompressSettings, chained: bool = False,
          row_align: int = SQUARE_ALIGN) -> dict:
    images, meta = build_images(q, grid_shape(q.count, row_align))
    files = encode_all(images, pool, settings.webp.for_order(chained))
    out = {name[:-5]: len(b) for name, b in files.items()}
    out["total"] = sum(out.values()) + len(json.dumps(meta))
    return out


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def bench_scene(name: str, splats: Splats, methods: list[str], dev: torch.device, pool, iterations: int,
                repeat: int) -> dict:
    settings = CompressSettings()
    tens = {k: torch.from_numpy(getattr(splats, k)).to(dev) for k in ATTRIBUTES}
    t0 = time.perf_counter()
    q = quantize_scene(*(tens[k] for k in ATTRIBUTES), kmeans_iterations=iterations)
    sync(dev)
    row = {"scene": name, "splats": splats.count, "sh_degree": splats.sh_degree,
           "quantize_seconds": time.perf_counter() - t0, "methods": {}}
    choose = lambda qs, c, ch, align: smallest_by_sample(  # noqa: E731
        qs, c, lambda imgs, keys: encode_all(imgs, pool, settings.webp, keys), ch, align)
    for m in methods:
        method, _, chunk = m.partition(":")      # "chain:256": the chained order with another chunk
        chain = dataclasses.replace(settings.chain, chunk=int(chunk)) if chunk else settings.chain
        secs = []
        for _ in range(repeat):
            t1 = time.perf_counter()
            order, info = order_scene(q, tens, method, plas=settings.plas, chain=chain, choose=choose)
            qo = apply_order(q, order)
            sync(dev)
            secs.append(time.perf_counter() - t1)
        r = {"seconds": min(secs), "seconds_all": secs, "info": info,
             "bytes": sizes(qo, pool, settings, info["chained"], info["row_align"])}
        if method == "chain":
            cands = chain_orders(q, tens["means"], chain)
            align = chain_chunk(chain, dev)
            r["candidates_bytes"] = [sizes(apply_order(q, c.cpu().numpy()), pool, settings, i == 0,
                                           align if i == 0 else SQUARE_ALIGN)["total"] for i, c in enumerate(cands)]
        row["methods"][m] = r
        print(f"  {name:<22}{m:<9}{r['bytes']['total']:>12,} B  {r['seconds']:8.3f} s  {info}", flush=True)
    base = row["methods"].get("morton", {}).get("bytes", {}).get("total")
    if base:
        for r in row["methods"].values():
            r["ratio_to_morton"] = r["bytes"]["total"] / base
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenes", nargs="*", help="PLY files, .sog bundles or SOG folders (real scenes)")
    ap.add_argument("--methods", default="chain,hilbert,morton,plas",
                    help=f"comma-separated, of {', '.join(ORDER_METHODS)}; chain:K = chain with chunk K")
    ap.add_argument("--synth", type=int, default=0, help="add a synthetic SH3 scene of this many splats")
    ap.add_argument("--synth-script", default=os.path.join(ROOT, "..", "shared", "bench", "synth_scene.py"),
                    help="the shared scene generator (default ../shared/bench/synth_scene.py)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--iterations", type=int, default=10, help="SH palette k-means iterations (default 10)")
    ap.add_argument("--repeat", type=int, default=2, help="time each order this many times, keep the best")
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "order_bench.json"))
    a = ap.parse_args()
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    for m in methods:
        if m.partition(":")[0] not in ORDER_METHODS:
            ap.error(f"unknown method {m!r}")
    dev = resolve_device(a.device)
    pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2))
    rows = []
    for path in a.scenes:
        name = os.path.basename(os.path.normpath(path))
        rows.append(bench_scene(name, load(path), methods, dev, pool, a.iterations, a.repeat))
    if a.synth:
        rows.append(bench_scene(f"synth_{a.synth}_sh3", synth(a.synth, a.synth_script), methods, dev, pool, a.iterations, a.repeat))
    real = [r for r in rows if not r["scene"].startswith("synth_")]
    totals = {m: sum(r["methods"][m]["bytes"]["total"] for r in real) for m in methods}
    print(f"\n{'scene':<22}{'splats':>9}" + "".join(f"{m:>22}" for m in methods))
    for r in rows:
        cells = []
        for m in methods:
            x = r["methods"][m]
            ratio = f" ({x['ratio_to_morton']:.3f})" if "ratio_to_morton" in x else ""
            cells.append(f"{x['bytes']['total']:>11,}{ratio} {x['seconds']:.2f}s")
        print(f"{r['scene']:<22}{r['splats']:>9}" + "".join(f"{c:>22}" for c in cells))
    if real:
        line = "".join(f"{totals[m]:>22,}" for m in methods)
        print(f"{'sum of real scenes':<31}{line}")
    result = {"device": device_label(dev), "host": platform.node(), "methods": methods, "scenes": rows,
              "real_total_bytes": totals}
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {a.json}")
    pool.shutdown()


if __name__ == "__main__":
    main()
