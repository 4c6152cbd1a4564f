"""Our own Gaussian splat rasterizer, in torch so that one code path runs on a CPU and a GPU.

What a viewer does, with the footprint the PlayCanvas engine's splat shader draws (so that a
metric scores what its viewers show, not the wider 3DGS reference footprint): each splat's 3-D
covariance projected through the camera's Jacobian at the splat's centre (not clamped to the
frustum, as the engine does not) plus the engine's low-pass; the smaller eigenvalue raised to the
engine's floor; the quad's half-axes 2 sqrt(2 lambda) capped at min(1024, W, H) px; splats
whose quad is under 2 px across not drawn. The engine states those constants in half pixels
(its focal length is W P[0][0], twice the focal length in pixels), so here each is a quarter
of its value in px^2 (`ENGINE_UNITS_PER_PX2`). The
falloff the engine's `normExp`: (exp(-d^2/2) - e^-4) / (1 - e^-4), cut at d^2 = 8, alpha =
opacity x falloff with no upper clamp and nothing below 1/255. Colour from the SH coefficients
and the view direction, composited front to back in depth order over the background. What stays
different: the engine sorts by bucketed depth and blends into 8 bits, which puts a noise floor
under its PSNR (bench/NOTES.md). The engine's own rendering (`harness`) stays the conformance
truth; this is the fast metric a batch can afford for every scene (`render.score`).

Why fragments and not tiles: at the low resolutions a metric needs, most splats cover a few
pixels, so each splat emits only the pixels of its own footprint (on each row of its box, the
run of pixels inside the ellipse where its alpha can reach 1/255: half the box's pixels for a
typical rotated splat). Fragments are made in depth order, a chunk of splats at a time (bounded memory),
sorted by pixel with a stable sort (depth order kept within a pixel), and the transmittance is a
segmented sum of log(1 - alpha) per pixel, carried from chunk to chunk.
"""
from __future__ import annotations

import bisect
import importlib
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from sogs_core.model.rotations import quat_to_matrix
from sogs_core.model.sh import SH_C0, sh_basis
from sogs_core.render.cameras import View
from sogs_core.render.engine_model import (SortBox, composite_rgba8, work_buffer_alpha, work_buffer_colours,
                                           work_buffer_log_scales, work_buffer_quats)

#: the engine's shader projects with a focal length of W P[0][0], twice the focal length in
#: pixels, so its 2-D covariances and the constants below are in half pixels: one of its units^2
#: is a quarter of a px^2. Reading them as px^2 drew every splat with a 4x low-pass and twice
#: the engine's size cap (bench/NOTES.md, session 34)
ENGINE_UNITS_PER_PX2 = 4.0
#: the screen-space low-pass added to every projected covariance (the engine's 0.3, in px^2)
LOW_PASS = 0.3 / ENGINE_UNITS_PER_PX2
ALPHA_MIN = 1.0 / 255.0
#: the engine's quad covers d^2 <= 8 (2 sqrt 2 standard deviations); its falloff reaches 0 there
CUT_D2 = 8.0
FALLOFF_FLOOR = math.exp(-4.0)
#: the smallest eigenvalue (px^2) the engine gives a projected splat (its 0.1), and the quad's
#: size across (px) below which it draws nothing (its material's minPixelSize)
MIN_EIGENVALUE = 0.1 / ENGINE_UNITS_PER_PX2
MIN_PIXEL_SIZE = 2.0
#: the quad's half-axis in standard deviations: it ends where the falloff reaches 0 (d^2 = 8)
QUAD_SIGMAS = math.sqrt(CUT_D2)
#: alpha is kept below 1 so that log(1 - alpha) stays finite (an 8-bit target cannot tell)
ALPHA_MAX = 1.0 - 1e-6
#: fragments per chunk on a CPU and on a GPU: bounds the memory of one render whatever the
#: scene's size (a GPU takes bigger chunks: fewer kernel launches)
CHUNK_FRAGMENTS = 1 << 18
CHUNK_FRAGMENTS_CUDA = 1 << 24
#: a pixel whose transmittance fell below this takes no more fragments (3DGS's early stop; what
#: it leaves out is below a tenth of an 8-bit level)
MIN_TRANSMITTANCE = 1e-4


@dataclass(frozen=True)
class Camera:
    """A pinhole camera in the engine's convention: vertical field of view, square pixels."""

    view: View
    width: int
    height: int
    fov_deg: float
    near: float
    far: float


def colours(f_dc: torch.Tensor, f_rest: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """(N, 3) linear RGB of each splat seen along `dirs` (camera -> splat, unit), clamped at 0."""
    rgb = 0.5 + SH_C0 * f_dc
    k = f_rest.shape[1] // 3
    if k:
        rest = f_rest.reshape(len(f_rest), 3, k)
        basis = sh_basis(dirs, k)
        if rest.is_cuda:      # a million 3 x k products batched are slow on a GPU (bench/NOTES.md)
            rgb = rgb + (rest * basis[:, None, :]).sum(2)
        else:
            rgb = rgb + torch.einsum("nck,nk->nc", rest, basis)
    return rgb.clamp_min(0.0)


#: drawn splats (of all the views in one launch) whose colours are computed at once: the SH
#: rows gathered for them and their products (twice 180 bytes a splat at SH3) would otherwise be
#: the largest buffers of a render (2.9 GB for 1M SH3 splats in 8 views; a 32M streamed level
#: peaked at 15 GB, bench/NOTES.md, session 25); a few more launches per million
COLOUR_ROWS = 1 << 20


def drawn_colours(t: dict[str, torch.Tensor], sel: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """`colours` of the splats `sel` of t (their view directions `dirs`), COLOUR_ROWS at a time."""
    parts = [colours(t["f_dc"].index_select(0, s), t["f_rest"].index_select(0, s), d)
             for s, d in zip(sel.split(COLOUR_ROWS), dirs.split(COLOUR_ROWS))]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _camera_frame(view: View, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(position (3,), rows right / down / forward (3, 3)): image x right, y down, z into the scene."""
    pos = torch.tensor(view.position, dtype=torch.float32, device=device)
    fwd = torch.tensor(view.target, dtype=torch.float32, device=device) - pos
    fwd = fwd / fwd.norm()
    up = torch.tensor(view.up, dtype=torch.float32, device=device)
    right = torch.linalg.cross(fwd, up)
    right = right / right.norm()
    true_up = torch.linalg.cross(right, fwd)
    return pos, torch.stack([right, -true_up, fwd])


#: the six distinct entries of a symmetric 3x3 matrix, as `prepare` stores them
COV_ENTRIES = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
#: splats whose covariances `prepare` computes at once (bounds its temporaries)
PREPARE_ROWS = 1 << 22


def prepare(t: dict[str, torch.Tensor], device: Optional[torch.device] = None,
            work_buffer: bool = False) -> dict[str, torch.Tensor]:
    """What every view of a scene needs alike, computed once: the 3-D covariances R S S R^T
    ("cov6", (N, 6): xx, yy, zz, xy, xz, yz) and the peak alphas ("alpha0"), on `device` (default:
    where t's rotations are), PREPARE_ROWS splats at a time: R S alone is 9 floats a splat, and
    rotations, scales and opacities held on the host move to the device a chunk at a time.
    `work_buffer`: from rotations, scales and opacities rounded as the engine's compact work
    buffer rounds them (`engine_model`). `project` takes `t` with or without them."""
    if "cov6" in t:
        return t
    dev = device or t["quats"].device
    n = len(t["quats"])
    cov6 = torch.empty(n, 6, dtype=torch.float32, device=dev)
    alpha0 = torch.empty(n, dtype=torch.float32, device=dev)
    for s in range(0, n, PREPARE_ROWS):
        rows = slice(s, s + PREPARE_ROWS)
        at = lambda name: t[name][rows].to(dev, torch.float32)  # noqa: E731
        quats, log_scales, alpha = at("quats"), at("log_scales"), torch.sigmoid(at("opacity"))
        if work_buffer:
            quats, log_scales, alpha = work_buffer_quats(quats), work_buffer_log_scales(log_scales), work_buffer_alpha(alpha)
        m = quat_to_matrix(quats) * torch.exp(log_scales)[:, None, :]   # R S
        cov6[rows] = torch.stack([(m[:, i] * m[:, j]).sum(1) for i, j in COV_ENTRIES], 1)
        alpha0[rows] = alpha
    return {**t, "cov6": cov6, "alpha0": alpha0}


def _screen_covariance(cov6: torch.Tensor, j0: list[torch.Tensor], j1: list[torch.Tensor]
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(a, b, c) of the 2-D covariance J S J^T, J's rows j0 and j1 given as three (n,) columns
    each: written out over S's six entries, since batched 3x3 products were most of a GPU
    render's projection (bench/NOTES.md, session 23)."""
    xx, yy, zz, xy, xz, yz = cov6.unbind(1)

    def form(p: list[torch.Tensor], q: list[torch.Tensor]) -> torch.Tensor:    # p^T S q
        return (xx * p[0] * q[0] + yy * p[1] * q[1] + zz * p[2] * q[2] + xy * (p[0] * q[1] + p[1] * q[0])
                + xz * (p[0] * q[2] + p[2] * q[0]) + yz * (p[1] * q[2] + p[2] * q[1]))
    return form(j0, j0), form(j0, j1), form(j1, j1)


def _one_shape(cams: Sequence[Camera]) -> Camera:
    """The first camera, after checking that every one has its image size and field of view
    (what one batch of views shares)."""
    cam = cams[0]
    if any((c.width, c.height, c.fov_deg) != (cam.width, cam.height, cam.fov_deg) for c in cams):
        raise ValueError("every camera of one batch of views must have the same image size and field of view")
    return cam


def project(t: dict[str, torch.Tensor], cam: Camera) -> dict[str, torch.Tensor]:
    """The splats in front of the camera and on screen, front to back: centre (u, v) in pixels,
    conic (a, b, c) of the inverse 2-D covariance, peak alpha, colour, and the half-extent of the
    box where alpha can reach 1/255 (`project_views` of one camera)."""
    return project_views(t, [cam])[0]


#: the fields of a projected splat that compositing reads, besides the colour ("rgb")
PROJECTED = ("u", "v", "a", "b", "c", "alpha", "ext_x", "ext_y", "reach2")


def project_views(t: dict[str, torch.Tensor], cams: Sequence[Camera]) -> tuple[dict[str, torch.Tensor], list[int]]:
    """`project` for several cameras of one image size and field of view at once: (the views'
    projected splats one view after another, each front to back, or in the engine's drawing
    order where t holds its "sort_box" (`engine_model.SortBox`); how many each view has). One
    set of launches for every view: on a GPU the metric was bound by launching small kernels
    (bench/NOTES.md, session 24). Memory: the splats are projected VIEW_BATCH_SPLATS splat-views
    at a time (a few float arrays of that length), and only the drawn ones are kept, so a huge
    scene's projection costs about what its drawn splats hold, not a few times the scene."""
    t = prepare(t)
    n, views = len(t["means"]), len(cams)
    rows = max(1, VIEW_BATCH_SPLATS // max(1, views))
    parts = [_drawn(t, cams, slice(s, s + rows)) for s in range(0, max(n, 1), rows)]   # one part if empty
    drawn = parts[0] if len(parts) == 1 else {k: torch.cat([p.pop(k) for p in parts]) for k in list(parts[0])}
    order = torch.argsort(drawn.pop("z"))                               # front to back ...
    view = drawn.pop("view")
    if views > 1:                                                       # ... inside each view, views in order
        order = order.index_select(0, torch.sort(view.index_select(0, order), stable=True).indices)
    counts = torch.bincount(view, minlength=views).tolist() if views > 1 else [len(order)]
    # one field at a time, so that only one is held twice
    return {k: drawn.pop(k).index_select(0, order) for k in (*PROJECTED, "rgb")}, counts


def _drawn(t: dict[str, torch.Tensor], cams: Sequence[Camera], rows: slice) -> dict[str, torch.Tensor]:
    """The splats `rows` of `t` (prepared) that each camera draws, in no particular order: the
    `PROJECTED` fields, "rgb" (rounded as the engine's work buffer rounds them where t's
    "work_buffer" is set), depth "z" (where t holds a "sort_box": the engine's drawing order
    instead) and the camera's index "view"."""
    dev = t["means"].device
    cam = _one_shape(cams)
    means = t["means"][rows]
    alpha0_all = t["alpha0"][rows]
    n, views = len(means), len(cams)
    frames = [_camera_frame(c.view, dev) for c in cams]
    pos = torch.stack([f[0] for f in frames])                               # (V, 3)
    r = torch.stack([f[1] for f in frames]).reshape(views, 9)               # rows right, down, forward
    d = [means[None, :, k] - pos[:, k, None] for k in range(3)]             # (V, N) each
    pc = [d[0] * r[:, 3 * k, None] + d[1] * r[:, 3 * k + 1, None] + d[2] * r[:, 3 * k + 2, None] for k in range(3)]
    del d
    near = torch.tensor([c.near for c in cams], dtype=torch.float32, device=dev)[:, None]
    far = torch.tensor([c.far for c in cams], dtype=torch.float32, device=dev)[:, None]
    keep = (pc[2] > near) & (pc[2] < far) & (alpha0_all >= ALPHA_MIN)[None, :]
    idx = keep.reshape(-1).nonzero().squeeze(1)                              # view * n + splat
    del keep
    view = torch.div(idx, n, rounding_mode="floor")
    splat = idx - view * n
    x, y, z = (c.reshape(-1).index_select(0, idx) for c in pc)
    del pc, idx
    alpha0 = alpha0_all.index_select(0, splat)
    fy = cam.height / 2 / math.tan(math.radians(cam.fov_deg) / 2)
    fx = fy
    cx, cy = cam.width / 2, cam.height / 2
    # the Jacobian at the splat's centre, as the engine takes it (the 3DGS reference clamps the
    # centre to 1.3x the frustum; the engine does not, and its off-screen needles show it);
    # J W as two rows per splat, three columns each
    ax, bx = fx / z, fx * x / (z * z)
    ay, by = fy / z, fy * y / (z * z)
    rv = r.index_select(0, view) if views > 1 else r.expand(len(splat), 9)
    j0 = [ax * rv[:, k] - bx * rv[:, 6 + k] for k in range(3)]
    j1 = [ay * rv[:, 3 + k] - by * rv[:, 6 + k] for k in range(3)]
    del ax, bx, ay, by, rv
    sxx, sxy, syy = _screen_covariance(t["cov6"][rows].index_select(0, splat), j0, j1)
    del j0, j1
    a, b, c, on = _engine_footprint(sxx + LOW_PASS, sxy, syy + LOW_PASS, min(1024.0, cam.width, cam.height))
    del sxx, sxy, syy
    det = (a * c - b * b).clamp_min(1e-12)
    u = cx + fx * x / z
    v = cy + fy * y / z
    # alpha0 (exp(-d^2/2) - f) / (1 - f) >= 1/255 within d^2 <= -2 ln(f + (1 - f) / (255 alpha0)),
    # and never past the quad's d^2 = 8
    need = FALLOFF_FLOOR + (1.0 - FALLOFF_FLOOR) * ALPHA_MIN / alpha0.clamp_min(ALPHA_MIN)
    reach = torch.sqrt((-2.0 * torch.log(need.clamp_max(1.0))).clamp(0.0, CUT_D2))
    ext_x = reach * torch.sqrt(a)
    ext_y = reach * torch.sqrt(c)
    on = on & (u + ext_x >= 0) & (u - ext_x <= cam.width) & (v + ext_y >= 0) & (v - ext_y <= cam.height)
    drawn = on.nonzero().squeeze(1)
    at = lambda q: q.index_select(0, drawn)  # noqa: E731
    sel, in_view = at(splat), at(view)
    part = {"u": at(u), "v": at(v), "a": at(c / det), "b": at(-b / det), "c": at(a / det),
            "alpha": at(alpha0), "ext_x": at(ext_x), "ext_y": at(ext_y), "reach2": at(reach * reach),
            "z": at(z), "view": in_view}
    del u, v, a, b, c, det, alpha0, ext_x, ext_y, reach, need, x, y, z, splat, view
    if _colour_kernel_here(dev):
        from sogs_core.render.colour_triton import drawn_colours as drawn_colours_kernel

        part["rgb"] = drawn_colours_kernel(means, t["f_dc"][rows], t["f_rest"][rows], sel, in_view, pos)
    else:
        dirs = means.index_select(0, sel) - pos.index_select(0, in_view)
        dirs = dirs / dirs.norm(dim=1, keepdim=True).clamp_min(1e-12)
        part["rgb"] = drawn_colours({k: t[k][rows] for k in ("f_dc", "f_rest")}, sel, dirs)
    if t.get("work_buffer"):
        part["rgb"] = work_buffer_colours(part["rgb"])
    box: Optional[SortBox] = t.get("sort_box")
    if box is not None:
        keys = torch.empty(len(sel), dtype=torch.float64, device=dev)
        for v, (position, frame) in enumerate(frames):
            mine = (in_view == v).nonzero().squeeze(1)
            keys[mine] = box.draw_keys(part["z"].index_select(0, mine), sel.index_select(0, mine) + (rows.start or 0),
                                       position, frame[2])
        part["z"] = keys
    return part


def _engine_footprint(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
                      vmin: float) -> tuple[torch.Tensor, ...]:
    """The 2-D covariance (a, b; b, c) (px^2) as the engine draws it: eigenvalues raised to
    MIN_EIGENVALUE and capped where the quad's half-axis QUAD_SIGMAS sqrt(lambda) reaches vmin
    pixels, recomposed; and which splats it draws at all (the quad at least MIN_PIXEL_SIZE
    across)."""
    mid = 0.5 * (a + c)
    radius = torch.sqrt((0.5 * (a - c)) ** 2 + b * b)
    cap = (vmin / QUAD_SIGMAS) ** 2
    lam1 = (mid + radius).clamp(MIN_EIGENVALUE, cap)
    lam2 = (mid - radius).clamp(MIN_EIGENVALUE, cap)
    drawn = 2.0 * QUAD_SIGMAS * torch.sqrt(lam1) >= MIN_PIXEL_SIZE
    # unit eigenvector of lam1: (b, lam1 - a), or the x axis where the covariance is diagonal
    # with a >= c (the engine normalizes the same vector)
    ex, ey = b, (mid + radius) - a
    norm = torch.sqrt(ex * ex + ey * ey)
    flat = norm < 1e-20
    ex = torch.where(flat, torch.ones_like(ex), ex / norm.clamp_min(1e-30))
    ey = torch.where(flat, torch.zeros_like(ey), ey / norm.clamp_min(1e-30))
    return (lam1 * ex * ex + lam2 * ey * ey, (lam1 - lam2) * ex * ey, lam1 * ey * ey + lam2 * ex * ex,
            drawn)


def _boxes(p: dict[str, torch.Tensor], cam: Camera) -> tuple[torch.Tensor, ...]:
    """Each splat's pixel box (x0, y0, width, height), clipped to the image (empty: width 0)."""
    x0 = torch.floor(p["u"] - p["ext_x"]).clamp(0, cam.width).long()
    x1 = torch.ceil(p["u"] + p["ext_x"]).clamp(0, cam.width).long()
    y0 = torch.floor(p["v"] - p["ext_y"]).clamp(0, cam.height).long()
    y1 = torch.ceil(p["v"] + p["ext_y"]).clamp(0, cam.height).long()
    return x0, y0, (x1 - x0).clamp_min(0), (y1 - y0).clamp_min(0)


#: how far (in d^2) a row's run reaches past the ellipse where alpha is 1/255, so that float32
#: rounding never drops a pixel the alpha test would keep (the test itself decides)
SPAN_MARGIN = 1e-4


def _row_spans(p: dict[str, torch.Tensor], boxes: tuple[torch.Tensor, ...],
               sl: slice) -> tuple[torch.Tensor, ...]:
    """Per row of the box of every splat in `sl` (splat after splat, rows top down): the splat
    (counted from sl.start), the row, the first pixel inside the splat's reach ellipse and how
    many follow. A row's run solves the ellipse's quadratic in x at the pixel centres' y,
    clipped to the box."""
    x0, y0, bw, bh = (b[sl] for b in boxes)
    dev = bw.device
    rows_per = torch.where(bw > 0, bh, torch.zeros_like(bh))
    who = torch.repeat_interleave(torch.arange(len(bw), device=dev), rows_per)
    first_row = (torch.cumsum(rows_per, 0) - rows_per).index_select(0, who)
    y = y0.index_select(0, who) + torch.arange(len(who), device=dev) - first_row
    at = lambda name: p[name][sl].index_select(0, who)  # noqa: E731
    dy = y.float() + 0.5 - at("v")
    a, b, c = at("a"), at("b"), at("c")
    r2 = at("reach2") * (1.0 + SPAN_MARGIN) + SPAN_MARGIN
    disc = (b * dy) ** 2 - a * (c * dy * dy - r2)
    half = torch.sqrt(disc.clamp_min(0.0)) / a
    mid = at("u") - b * dy / a - 0.5                 # pixel px's centre is px + 0.5
    left = x0.index_select(0, who)
    first = torch.maximum(torch.ceil(mid - half).long(), left)
    last = torch.minimum(torch.floor(mid + half).long(), left + bw.index_select(0, who) - 1)
    runs = torch.where(disc >= 0, (last - first + 1).clamp_min(0), torch.zeros_like(first))
    return who, y, first, runs


def _triton_here(device: torch.device, module: str) -> bool:
    """Whether the Triton kernels of `module` run on `device`: a CUDA device where Triton imports."""
    if device.type != "cuda":
        return False
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _colour_kernel_here(device: torch.device) -> bool:
    """Whether the drawn splats' colours come from the Triton kernel (`colour_triton`); else
    `drawn_colours` in torch ops."""
    return _triton_here(device, "sogs_core.render.colour_triton")


def _tile_kernel_here(device: torch.device) -> bool:
    """Whether renders on `device` composite by the tile kernel (`raster_tiles`)."""
    return _triton_here(device, "sogs_core.render.raster_tiles")


def composite(p: dict[str, torch.Tensor], boxes: tuple[torch.Tensor, ...], width: int, height: int,
              tiles: Optional[bool] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(colour (H*W, 3), log transmittance (H*W,)) of the projected splats `p` (front to back):
    by the tile kernel (`raster_tiles`, Triton) or by fragments in torch ops. `tiles` None: the
    tile kernel on a CUDA device where Triton imports, else fragments; True: the tile kernel
    (ImportError without Triton); False: fragments."""
    if tiles or (tiles is None and _tile_kernel_here(p["u"].device)):
        from sogs_core.render.raster_tiles import composite as composite_tiles   # ImportError: no Triton

        return composite_tiles(p, boxes, width, height, FALLOFF_FLOOR, ALPHA_MIN, ALPHA_MAX, MIN_TRANSMITTANCE)
    return composite_fragments(p, boxes, width, height)


#: splats x views projected at once for one tile-kernel launch on a GPU (bounds its memory: ~60
#: bytes a projected splat); a scene larger than this goes one view at a time
VIEW_BATCH_SPLATS = 1 << 23


def _slices_from_back(count: torch.Tensor, budget: int) -> list[slice]:
    """Runs of splats, the last (farthest) first, each holding at most `budget` box pixels
    (`count` per splat) or a single splat: the chunks of a back-to-front blend."""
    before = [0] + torch.cumsum(count.long(), 0).tolist()      # box pixels of the splats before each
    out, stop = [], len(before) - 1
    while stop > 0:
        start = min(bisect.bisect_left(before, before[stop] - budget), stop - 1)
        out.append(slice(start, stop))
        stop = start
    return out


def render_views(t: dict[str, torch.Tensor], cams: Sequence[Camera],
                 background: Sequence[float] = (0.0, 0.0, 0.0)) -> list[torch.Tensor]:
    """`render` of every camera (all of one size): on a GPU with the tile kernel, as many views
    per launch as VIEW_BATCH_SPLATS allows (`raster_tiles.composite_views`); else view by view."""
    dev = t["means"].device
    if not cams:
        return []
    if not _tile_kernel_here(dev) or "sort_box" in t:
        return [render(t, cam, background) for cam in cams]
    from sogs_core.render.raster_tiles import composite_views

    cam = _one_shape(cams)
    w, h = cam.width, cam.height
    bg = torch.tensor(list(background), dtype=torch.float32, device=dev)
    step = max(1, VIEW_BATCH_SPLATS // max(1, len(t["means"])))
    images = []
    for i in range(0, len(cams), step):
        group = cams[i:i + step]
        p, counts = project_views(t, group)
        rgb_acc, log_t = composite_views(p, _boxes(p, cam), counts, w, h, FALLOFF_FLOOR, ALPHA_MIN,
                                         ALPHA_MAX, MIN_TRANSMITTANCE)
        img = rgb_acc + torch.exp(log_t).float()[:, None] * bg
        images += list(img.reshape(len(group), h, w, 3).unbind(0))
    return images


def render(t: dict[str, torch.Tensor], cam: Camera, background: Sequence[float] = (0.0, 0.0, 0.0)) -> torch.Tensor:
    """(H, W, 3) float32 image in [0, 1] of the splats `t` (tensors keyed like `Splats`' fields,
    on one device) seen by `cam`: on a CUDA device through the tile kernel (`raster_tiles`)
    where Triton imports, else by fragments in torch ops; where t holds a "sort_box", blended as
    the engine's RGBA8 framebuffer blends (`engine_model.composite_rgba8`)."""
    dev = t["means"].device
    p = project(t, cam)
    if "sort_box" in t:
        boxes = _boxes(p, cam)
        chunk = CHUNK_FRAGMENTS_CUDA if dev.type == "cuda" else CHUNK_FRAGMENTS
        levels = composite_rgba8(p, cam.width, cam.height, lambda sl: _fragments(p, boxes, sl, cam.width),
                                 _slices_from_back(boxes[2] * boxes[3], chunk), background)
        return (levels / 255.0).float().reshape(cam.height, cam.width, 3)
    rgb_acc, log_t = composite(p, _boxes(p, cam), cam.width, cam.height)
    bg = torch.tensor(list(background), dtype=torch.float32, device=dev)
    img = rgb_acc + torch.exp(log_t).float()[:, None] * bg
    return img.reshape(cam.height, cam.width, 3)


def _fragments(p: dict[str, torch.Tensor], boxes: tuple[torch.Tensor, ...], sl: slice, width: int,
               open_pixels: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, ...]:
    """(pixel, alpha, splat) of every fragment of the splats `sl` whose alpha reaches ALPHA_MIN
    (splat counted in p; alpha capped at ALPHA_MAX): one per pixel of each of their rows' runs
    (`_row_spans`), only in the pixels where `open_pixels` (bool per pixel) is set, if given."""
    dev = p["u"].device
    row_who, row_y, row_x, runs = _row_spans(p, boxes, sl)
    total = int(runs.sum())
    if total == 0:
        empty = torch.zeros(0, dtype=torch.long, device=dev)
        return empty, torch.zeros(0, device=dev), empty
    row = torch.repeat_interleave(torch.arange(len(runs), device=dev), runs)
    k = torch.arange(total, device=dev) - (torch.cumsum(runs, 0) - runs).index_select(0, row)
    # gathers by index_select: twice as fast as indexing on a CPU (bench/NOTES.md, session 19)
    who = row_who.index_select(0, row)
    px = row_x.index_select(0, row) + k
    py = row_y.index_select(0, row)
    at = lambda name: p[name][sl].index_select(0, who)  # noqa: E731
    pix = py * width + px
    if open_pixels is not None:
        open_ = open_pixels.index_select(0, pix).nonzero().squeeze(1)
        who, px, py, pix = (x.index_select(0, open_) for x in (who, px, py, pix))
    dx = px.float() + 0.5 - at("u")
    dy = py.float() + 0.5 - at("v")
    d2 = (at("a") * dx * dx + at("c") * dy * dy) + 2.0 * at("b") * dx * dy
    falloff = ((torch.exp(-0.5 * d2.clamp_min(0.0)) - FALLOFF_FLOOR) / (1.0 - FALLOFF_FLOOR)).clamp_min(0.0)
    alpha = (at("alpha") * falloff).clamp_max(ALPHA_MAX)
    live = (alpha >= ALPHA_MIN).nonzero().squeeze(1)
    return pix.index_select(0, live), alpha.index_select(0, live), who.index_select(0, live) + (sl.start or 0)


def composite_fragments(p: dict[str, torch.Tensor], boxes: tuple[torch.Tensor, ...], width: int,
                        height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(colour (H*W, 3), log transmittance (H*W,), float64) of the projected splats `p` (front to
    back), one fragment per splat and pixel of its rows' runs (`_row_spans`), a chunk of splats
    at a time."""
    dev = p["u"].device
    _, _, bw, bh = boxes
    count = bw * bh                     # the boxes bound each chunk's fragments (and its memory)
    n_pix = width * height
    rgb_acc = torch.zeros(n_pix, 3, device=dev)
    log_t = torch.zeros(n_pix, dtype=torch.float64, device=dev)   # log transmittance per pixel so far
    ends = torch.cumsum(count, 0)
    chunk = CHUNK_FRAGMENTS_CUDA if dev.type == "cuda" else CHUNK_FRAGMENTS
    log_t_min = math.log(MIN_TRANSMITTANCE)
    start = 0
    while start < len(count):
        # the next run of splats (front to back) whose fragments fit in one chunk
        base = int(ends[start - 1]) if start else 0
        stop = int(torch.searchsorted(ends, base + chunk, right=True))
        stop = max(stop, start + 1)
        sl = slice(start, stop)
        start = stop
        # pixels already opaque take nothing from splats behind them
        closed = base > 0 and bool((log_t < log_t_min).any())
        pix, alpha, who = _fragments(p, boxes, sl, width, (log_t >= log_t_min) if closed else None)
        if not len(pix):
            continue
        who = who - sl.start
        pix, perm = torch.sort(pix, stable=True)          # per pixel, still front to back
        alpha, who = alpha.index_select(0, perm), who.index_select(0, perm)
        # float64: the running sum spans the whole chunk, and the per-pixel part is a difference
        ln = torch.log1p(-alpha.double())
        csum = torch.cumsum(ln, 0)
        _, runs = torch.unique_consecutive(pix, return_counts=True)
        run_start = torch.cumsum(runs, 0) - runs
        before = torch.repeat_interleave((csum - ln)[run_start], runs)      # the run's sum before it
        excl = csum - ln - before + log_t.index_select(0, pix)
        weight = alpha * torch.exp(excl).float()
        rgb_acc.index_add_(0, pix, weight[:, None] * p["rgb"][sl].index_select(0, who))
        run_total = (csum[run_start + runs - 1] - before[run_start])
        log_t.index_add_(0, pix[run_start], run_total)
    return rgb_acc, log_t


def to_levels(image: torch.Tensor) -> torch.Tensor:
    """A render as the 8-bit levels a display (and the engine's read-back) would hold, kept on
    its device as float32 values 0..255."""
    return torch.floor(image.clamp(0.0, 1.0) * 255.0 + 0.5)


def to_uint8(image: torch.Tensor):
    """A render as a (H, W, 3) uint8 numpy array (a PNG's pixels)."""
    return to_levels(image).to(torch.uint8).cpu().numpy()
