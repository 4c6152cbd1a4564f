"""Our VP8L encoder against libwebp (Pillow) on the images of a real compression.

    python bench/vp8l_bench.py scene.ply [--device auto] [--repeat 3] [--json out.json]
        [--save-dir DIR] [--images shN_labels,scales]

Compresses the scene once with the default settings, keeps the images the pipeline hands to the
WebP encoder, then encodes each with libwebp (the production effort for that image) and with
our encoder on the device; checks that libwebp's decoder gives back our texels exactly and
reports bytes and seconds per image (best of --repeat, warm). Writes JSON (default
bench/results/vp8l_<name>.json).
"""
from __future__ import annotations

import io
import os
import platform
import sys
import time
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from results_io import scene_arguments, write_result  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import sogs_core.pipeline.compressor as compressor_module  # noqa: E402
from sogs_core.pipeline.compressor import Compressor  # noqa: E402
from sogs_core.settings import CompressSettings  # noqa: E402
from sogs_core.webp.vp8l import encode_lossless  # noqa: E402
from sogs_core.webp.codec import encode_webp  # noqa: E402


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def main() -> None:
    def options(ap) -> None:
        ap.add_argument("--save-dir", default=None,
                        help="also write each image as <name>.libwebp.webp and <name>.ours.webp here")
        ap.add_argument("--images", default=None, help="only these images (comma-separated stems)")

    a = scene_arguments(__doc__, extra=options)
    only = set(a.images.split(",")) if a.images else None
    comp = Compressor(device=a.device, settings=CompressSettings())
    captured: dict[str, tuple[np.ndarray, object]] = {}
    original = compressor_module.encode_webp

    def capture(img, settings, name="", device=None):
        captured[name] = (np.array(img), settings)
        return original(img, settings, name, device)

    compressor_module.encode_webp = capture
    with open(a.ply, "rb") as f:
        comp.compress(f.read(), None, name=os.path.basename(a.ply))
    compressor_module.encode_webp = original
    dev = comp.device
    rows = []
    for name, (img, webp) in captured.items():
        if only is not None and name.rsplit(".", 1)[0] not in only:
            continue
        t_lib, t_ours = [], []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            lib = encode_webp(img, replace(webp, encoder="libwebp"), name)
            t_lib.append(time.perf_counter() - t0)
            gpu_img = torch.from_numpy(img).to(dev)
            _sync(dev)
            t0 = time.perf_counter()
            ours = encode_lossless(gpu_img, dev, webp.vp8l_for(name))
            _sync(dev)
            t_ours.append(time.perf_counter() - t0)
        if a.save_dir:
            os.makedirs(a.save_dir, exist_ok=True)
            for tag, data in (("libwebp", lib), ("ours", ours)):
                with open(os.path.join(a.save_dir, f"{name.rsplit('.', 1)[0]}.{tag}.webp"), "wb") as f:
                    f.write(data)
        exact = np.array_equal(np.asarray(Image.open(io.BytesIO(ours)).convert("RGBA")), img)
        rows.append({"image": name, "shape": list(img.shape), "libwebp_bytes": len(lib), "ours_bytes": len(ours),
                     "ratio": len(ours) / len(lib), "libwebp_s": min(t_lib), "ours_s": min(t_ours), "exact": exact})
        r = rows[-1]
        print(f"{name:20} {r['libwebp_bytes']:>12,} {r['libwebp_s']:6.3f}s  ours {r['ours_bytes']:>12,} "
              f"{r['ours_s']:6.3f}s  {r['ratio']:.4f} {'exact' if exact else 'MISMATCH'}", flush=True)
    tl, to = sum(r["libwebp_bytes"] for r in rows), sum(r["ours_bytes"] for r in rows)
    print(f"total libwebp {tl:,} ours {to:,} ({to / tl:.4f})")
    write_result({"input": a.ply, "device": comp.device_name, "host": platform.node(), "images": rows,
                  "libwebp_bytes": tl, "ours_bytes": to, "ratio": to / tl},
                 a.json, f"vp8l_{os.path.splitext(os.path.basename(a.ply))[0]}.json")
    comp.close()


if __name__ == "__main__":
    main()
