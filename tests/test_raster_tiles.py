"""The tile kernel (`sogs_core.render.raster_tiles`, the GPU's compositing) against the fragment
path in torch ops, run by Triton's interpreter on this CPU: the same pixels up to float rounding,
for two views in one launch with the transmittance as a running product (the default) and for
one with it as a sum of logs. On a GPU, bench/gpu_check.py compares the two at
metric sizes."""
from __future__ import annotations

import json
import textwrap

import pytest

from .conftest import run_in_triton_interpreter

pytest.importorskip("triton")

CHECK = textwrap.dedent("""
    import json, torch
    from sogs_core.model.synth import synthetic_scene
    from sogs_core.render import raster, raster_tiles
    from sogs_core.render.score import RenderMetricSettings, _prepared, cameras_for
    s = synthetic_scene(1200, 1, seed=3)   # few: the interpreter runs every tile x splat in Python
    s.log_scales[:] += 1.5                 # big enough to cover pixels at this size
    t = _prepared(s, torch.device("cpu"))
    out = []
    # 72 x 40: neither side a whole number of tiles
    cams = cameras_for(s.means, RenderMetricSettings(views=2, width=72, height=40))
    ps = [raster.project(t, cam) for cam in cams]
    bs = [raster._boxes(p, cam) for p, cam in zip(ps, cams)]
    pv, counts = raster.project_views(t, cams)              # both views projected at once
    bv = raster._boxes(pv, cams[0])
    n = 72 * 40
    limits = (raster.FALLOFF_FLOOR, raster.ALPHA_MIN, raster.ALPHA_MAX, raster.MIN_TRANSMITTANCE)
    both = raster_tiles.composite_views(pv, bv, counts, 72, 40, *limits)        # running product
    raster_tiles.LOG_DOMAIN = True
    logs = raster_tiles.composite_views(ps[0], bs[0], [len(ps[0]["u"])], 72, 40, *limits)
    for i, (cam, p, boxes) in enumerate(zip(cams + cams[:1], ps + ps[:1], bs + bs[:1])):
        a_rgb, a_lt = raster.composite(p, boxes, cam.width, cam.height, tiles=False)
        b_rgb, b_lt = (both[0][i * n:(i + 1) * n], both[1][i * n:(i + 1) * n]) if i < 2 else logs
        out.append({"drawn": len(p["u"]), "batched_drawn": counts[i] if i < 2 else len(p["u"]),
                    "rgb": (a_rgb - b_rgb).abs().max().item(),
                    "t": (torch.exp(a_lt).float() - torch.exp(b_lt)).abs().max().item(),
                    "levels": int((raster.to_levels(a_rgb) != raster.to_levels(b_rgb)).sum()),
                    "values": a_rgb.numel(), "lit": float(a_rgb.mean())})
    print(json.dumps(out))
""")


def test_tiles_match_fragments_in_the_interpreter():
    views = json.loads(run_in_triton_interpreter(CHECK))
    assert len(views) == 3
    for v in views:
        assert v["drawn"] > 500 and v["lit"] > 0.01            # the views see the scene
        assert v["batched_drawn"] == v["drawn"]
        # the two differ only where a pixel closes (transmittance under 1e-4: after a batch here,
        # after a chunk there) and in float32 against float64 sums
        assert v["rgb"] < 2e-4 and v["t"] < 2e-4
        assert v["levels"] <= v["values"] // 1000


COLOURS = textwrap.dedent("""
    import json, torch
    from sogs_core.render.colour_triton import drawn_colours
    from sogs_core.render.raster import colours
    g = torch.Generator().manual_seed(0)
    out = {}
    for k in (0, 3, 8, 15):
        n, v, p = 500, 3, 1300                      # p not a whole number of blocks
        means = torch.randn(n, 3, generator=g) * 3
        dc = torch.randn(n, 3, generator=g)
        rest = torch.randn(n, 3 * k, generator=g) * 0.3
        pos = torch.randn(v, 3, generator=g) * 10
        sel = torch.randint(0, n, (p,), generator=g)
        view = torch.randint(0, v, (p,), generator=g)
        d = means[sel] - pos[view]
        want = colours(dc[sel], rest[sel], d / d.norm(dim=1, keepdim=True))
        got = drawn_colours(means, dc, rest, sel, view, pos)
        out[k] = {"err": float((want - got).abs().max()), "clamped": float((want == 0).float().mean()),
                  "moved": float((want - colours(dc[sel], rest[sel] * 0, d)).abs().max())}
    print(json.dumps(out))
""")


def test_the_colour_kernel_matches_the_torch_colours_in_the_interpreter():
    """The GPU's drawn-splat colours (`colour_triton`) against `raster.colours` at every SH degree:
    the same values up to float32 rounding, the clamp at 0 included."""
    result = json.loads(run_in_triton_interpreter(COLOURS))
    for k, r in result.items():
        assert r["err"] < 1e-5, (k, r)
        assert r["clamped"] > 0.01                              # some colours hit the clamp
        if k != "0":
            assert r["moved"] > 0.1                             # and the SH bands count
