"""Output render of 1M SH3 (8 views 512^2, the metric's): colours by torch ops vs the Triton kernel
(`render.colour_triton`), synced section times (mean of 10), and the images' agreement; on a GPU:
    python bench/colour_ab.py scene.ply
"""
import os, sys, time, collections
sys.path.insert(0, os.getcwd())
import torch
import sogs_core.render.raster as R
import sogs_core.render.raster_tiles as RT
from sogs_core.formats import read_splats
from sogs_core.pipeline.compressor import Compressor
from sogs_core.render.score import RenderMetricSettings, cameras_for, render_scene, score_views
from sogs_core.settings import CompressSettings
dev = torch.device("cuda")
T = collections.defaultdict(float)
def wrap(mod, name):
    f = getattr(mod, name)
    def g(*a, **k):
        torch.cuda.synchronize(); t = time.perf_counter(); x = f(*a, **k); torch.cuda.synchronize()
        T[name] += time.perf_counter() - t; return x
    setattr(mod, name, g)
src = sys.argv[1]
data = Compressor(device="cuda", settings=CompressSettings(quality=80)).compress(src, with_fidelity=False).package.bundle_bytes()
inp, out = read_splats(src), read_splats(data, "o.sog")
m = RenderMetricSettings.for_device(dev)
keys = ("means", "quats", "log_scales", "f_dc", "opacity", "f_rest")
tin = {k: torch.from_numpy(getattr(inp, k)).to(dev) for k in keys}
tout = {k: torch.from_numpy(getattr(out, k)).to(dev) for k in keys}
cams = cameras_for(inp.means, m)
ref = render_scene(tin, cams, m.background, dev)
for mod, name in ((R, "_drawn"), (R, "drawn_colours"), (R, "project_views"), (R, "_boxes"), (RT, "tile_pairs"), (RT, "composite_views")):
    wrap(mod, name)
here = R._colour_kernel_here
imgs = {}
for mode in ("torch", "kernel", "torch", "kernel"):
    R._colour_kernel_here = (lambda d: False) if mode == "torch" else here
    reps = 10
    T.clear()
    for i in range(reps + 1):
        if i == 1:
            T.clear()
        torch.cuda.synchronize(); t = time.perf_counter()
        im = render_scene(tout, cams, m.background, dev); torch.cuda.synchronize(); T["render_scene"] += time.perf_counter() - t
        t = time.perf_counter(); s = score_views(ref, im); torch.cuda.synchronize(); T["score"] += time.perf_counter() - t
    imgs[mode] = im
    print(mode, " ".join(f"{k} {v / reps * 1e3:.2f}" for k, v in sorted(T.items(), key=lambda kv: -kv[1])), "ms; psnr", round(s["render_psnr"], 4), flush=True)
R._colour_kernel_here = here
diff = max(float((a - b).abs().max()) for a, b in zip(imgs["torch"], imgs["kernel"]))
ndiff = sum(int((a != b).sum()) for a, b in zip(imgs["torch"], imgs["kernel"]))
print("levels differing", ndiff, "of", sum(a.numel() for a in imgs["torch"]), "max", diff)
