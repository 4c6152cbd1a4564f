"""The compositing of `raster.render` as one Triton kernel over 16 x 16-pixel tiles (GPU only).

Why: the fragment path in torch ops makes, sorts and scatters every (splat, pixel) pair of a
view through memory: ~10^8 fragments for a 1M-splat scene at 512 x 512, tens of milliseconds
a view however it is chunked. Here the projected splats (`raster.project_views`) are
binned to the tiles their pixel boxes touch, the (tile, splat) pairs sorted by tile with a
stable sort (front to back kept inside a tile), and one program per tile walks its splats in
batches, every pixel of the tile in registers, until the tile is opaque.

Several views go through one launch (`composite_views`, after one `project_views`): their
(tile, splat) pairs sorted together by a tile number that counts on from view to view, one
program per tile of every view.
One view's 1024 tiles at 512 x 512 leave an H100's SMs short of programs, and sixteen launches
(8 views, 2 scenes) cost sixteen sorts and sixteen waits (bench/NOTES.md, session 24).

The same image as the fragment path up to float rounding: the same footprint, falloff and
cut-offs (one function computes them for both), a pixel closed once its transmittance falls below
`MIN_TRANSMITTANCE` (checked after each batch here, after each chunk there). The transmittance
is a running product in float32 here (`LOG_DOMAIN` False: no log and exp per pair), a sum of
log(1 - alpha) in float64 there.
Import fails (ImportError) where Triton is missing; `raster` then composites in torch ops.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

#: pixels on a tile's side (a program's 256 pixels), and splats composited per step of a program
TILE = 16
BATCH = 32


#: the kernel's transmittance as a sum of log(1 - alpha) (True) or a running product (False)
LOG_DOMAIN = False


@triton.jit
def _mul(a, b):
    return a * b


@triton.jit
def _tile_kernel(start_ptr, splat_ptr, u_ptr, v_ptr, a_ptr, b_ptr, c_ptr, alpha_ptr, rgb_ptr,
                 out_rgb_ptr, out_logt_ptr, W, H, tiles_x, tiles_per_view,
                 floor_: tl.constexpr, alpha_min: tl.constexpr, alpha_max: tl.constexpr,
                 log_t_min: tl.constexpr, t_min_: tl.constexpr, TILE_: tl.constexpr,
                 BATCH_: tl.constexpr, LOG_DOMAIN_: tl.constexpr):
    """Tile `pid` (of view pid // tiles_per_view): accumulate colour and log transmittance of
    its pixels over its splats."""
    pid = tl.program_id(0)
    view = pid // tiles_per_view
    local = pid - view * tiles_per_view
    ty = local // tiles_x
    tx = local - ty * tiles_x
    pix = tl.arange(0, TILE_ * TILE_)
    px = tx * TILE_ + pix % TILE_
    py = ty * TILE_ + pix // TILE_
    fx = px.to(tl.float32) + 0.5
    fy = py.to(tl.float32) + 0.5
    start = tl.load(start_ptr + pid)
    end = tl.load(start_ptr + pid + 1)
    acc_r = tl.zeros([TILE_ * TILE_], dtype=tl.float32)
    acc_g = tl.zeros([TILE_ * TILE_], dtype=tl.float32)
    acc_b = tl.zeros([TILE_ * TILE_], dtype=tl.float32)
    log_t = tl.zeros([TILE_ * TILE_], dtype=tl.float32)        # LOG_DOMAIN_: log T, else T
    if LOG_DOMAIN_:
        t_min = log_t_min
    else:
        log_t += 1.0
        t_min = t_min_
    k = tl.arange(0, BATCH_)
    j = start
    open_ = end > start
    while open_:
        at = j + k
        inb = at < end
        s = tl.load(splat_ptr + at, mask=inb, other=0)
        u = tl.load(u_ptr + s, mask=inb, other=0.0)
        v = tl.load(v_ptr + s, mask=inb, other=0.0)
        ca = tl.load(a_ptr + s, mask=inb, other=0.0)
        cb = tl.load(b_ptr + s, mask=inb, other=0.0)
        cc = tl.load(c_ptr + s, mask=inb, other=0.0)
        a0 = tl.load(alpha_ptr + s, mask=inb, other=0.0)
        r = tl.load(rgb_ptr + 3 * s, mask=inb, other=0.0)
        g = tl.load(rgb_ptr + 3 * s + 1, mask=inb, other=0.0)
        b = tl.load(rgb_ptr + 3 * s + 2, mask=inb, other=0.0)
        dx = fx[:, None] - u[None, :]
        dy = fy[:, None] - v[None, :]
        d2 = (ca[None, :] * dx * dx + cc[None, :] * dy * dy) + 2.0 * cb[None, :] * dx * dy
        fall = (tl.exp(-0.5 * tl.maximum(d2, 0.0)) - floor_) / (1.0 - floor_)
        alpha = tl.minimum(a0[None, :] * tl.maximum(fall, 0.0), alpha_max)
        live = (alpha >= alpha_min) & inb[None, :] & (log_t >= t_min)[:, None]
        alpha = tl.where(live, alpha, 0.0)
        if LOG_DOMAIN_:
            ln = tl.log(1.0 - alpha)
            before = tl.cumsum(ln, axis=1) - ln
            w = alpha * tl.exp(log_t[:, None] + before)
            log_t += tl.sum(ln, axis=1)
        else:
            # the product up to and including each splat, divided by its own factor (at least
            # 1e-6: ALPHA_MAX) for the product before it
            keep = 1.0 - alpha
            upto = tl.cumprod(keep, axis=1)
            w = alpha * log_t[:, None] * (upto / keep)
            log_t = log_t * tl.reduce(keep, 1, _mul)
        acc_r += tl.sum(w * r[None, :], axis=1)
        acc_g += tl.sum(w * g[None, :], axis=1)
        acc_b += tl.sum(w * b[None, :], axis=1)
        j += BATCH_
        open_ = (j < end) & (tl.max(log_t, axis=0) >= t_min)
    if not LOG_DOMAIN_:
        log_t = tl.log(log_t)
    inside = (px < W) & (py < H)
    o = view * W * H + py * W + px
    tl.store(out_rgb_ptr + 3 * o, acc_r, mask=inside)
    tl.store(out_rgb_ptr + 3 * o + 1, acc_g, mask=inside)
    tl.store(out_rgb_ptr + 3 * o + 2, acc_b, mask=inside)
    tl.store(out_logt_ptr + o, log_t, mask=inside)


def tile_pairs(x0: torch.Tensor, y0: torch.Tensor, bw: torch.Tensor, bh: torch.Tensor,
               tiles_x: int, tiles_y: int, views: int = 1,
               first_tile: int | torch.Tensor = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(splat index per pair sorted by tile, front to back inside a tile; start of each tile's
    run, views * tiles + 1 entries) for splats with pixel boxes (x0, y0, width, height);
    `first_tile` per splat: its view's first tile number (views after views)."""
    dev = x0.device
    on = (bw > 0) & (bh > 0)
    tx0 = torch.div(x0, TILE, rounding_mode="floor")
    ty0 = torch.div(y0, TILE, rounding_mode="floor")
    ntx = torch.where(on, torch.div(x0 + bw - 1, TILE, rounding_mode="floor") - tx0 + 1, 0)
    nty = torch.where(on, torch.div(y0 + bh - 1, TILE, rounding_mode="floor") - ty0 + 1, 0)
    count = ntx * nty
    base = ty0 * tiles_x + tx0 + first_tile
    who = torch.repeat_interleave(torch.arange(len(count), device=dev), count)
    k = torch.arange(len(who), device=dev) - (torch.cumsum(count, 0) - count).index_select(0, who)
    w = ntx.index_select(0, who)
    kk = torch.div(k, w, rounding_mode="floor")
    # int32 keys: half the radix passes of int64 (views * tiles stays far below 2^31)
    tile = (base.index_select(0, who) + kk * tiles_x + (k - kk * w)).to(torch.int32)
    tile, perm = torch.sort(tile, stable=True)
    n_tiles = views * tiles_x * tiles_y
    starts = torch.searchsorted(tile, torch.arange(n_tiles + 1, device=dev, dtype=tile.dtype))
    return who.index_select(0, perm).to(torch.int32), starts.to(torch.int32)


#: the projected arrays the kernel reads
_FIELDS = ("u", "v", "a", "b", "c", "alpha", "rgb")


def composite_views(p: dict[str, torch.Tensor], boxes: tuple[torch.Tensor, ...], counts: list[int],
                    width: int, height: int, floor_: float, alpha_min: float, alpha_max: float,
                    min_transmittance: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(colour (V*H*W, 3), log transmittance (V*H*W,)) of V views' projected splats
    (`raster.project_views`: views one after another, `counts` splats each, each view front to
    back; with their pixel boxes), in one sort and one launch."""
    dev = p["u"].device
    tiles_x, tiles_y = -(-width // TILE), -(-height // TILE)
    per_view = tiles_x * tiles_y
    views = len(counts)
    first_tile = 0 if views == 1 else torch.repeat_interleave(
        torch.arange(views, device=dev) * per_view, torch.tensor(counts, device=dev))
    splat, starts = tile_pairs(*boxes, tiles_x, tiles_y, views, first_tile)
    out_rgb = torch.zeros(views * width * height, 3, device=dev)
    out_logt = torch.zeros(views * width * height, device=dev)
    f32 = {k: p[k].float().contiguous() for k in _FIELDS}
    _tile_kernel[(views * per_view,)](
        starts, splat, f32["u"], f32["v"], f32["a"], f32["b"], f32["c"], f32["alpha"], f32["rgb"],
        out_rgb, out_logt, width, height, tiles_x, per_view,
        floor_=floor_, alpha_min=alpha_min, alpha_max=alpha_max,
        log_t_min=math.log(min_transmittance), t_min_=min_transmittance,
        TILE_=TILE, BATCH_=BATCH, LOG_DOMAIN_=LOG_DOMAIN, num_warps=8)
    return out_rgb, out_logt


def composite(p: dict[str, torch.Tensor], boxes: tuple[torch.Tensor, ...], width: int, height: int,
              floor_: float, alpha_min: float, alpha_max: float,
              min_transmittance: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(colour (H*W, 3), log transmittance (H*W,)) of the projected splats `p` (front to back)."""
    return composite_views(p, boxes, [len(p["u"])], width, height, floor_, alpha_min, alpha_max,
                           min_transmittance)
