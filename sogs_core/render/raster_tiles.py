"""The compositing of `raster.render` as one Triton kernel over 16 x 16-pixel tiles (GPU only).

Why: the fragment path in torch ops makes, sorts and scatters every (splat, pixel) pair of a
view through memory: ~10^8 fragments for a 1M-splat scene at 512 x 512, tens of milliseconds
a view however it is chunked. Here the projected splats (`raster.project`, unchanged) are
binned to the tiles their pixel boxes touch, the (tile, splat) pairs sorted by tile with a
stable sort (front to back kept inside a tile), and one program per tile walks its splats in
batches, every pixel of the tile in registers, until the tile is opaque.

The same image as the fragment path up to float rounding: the same footprint, falloff and
cut-offs (one function computes them for both), the transmittance as a sum of log(1 - alpha)
per pixel (float32 here, float64 there), a pixel closed once its transmittance falls below
`MIN_TRANSMITTANCE` (checked after each batch here, after each chunk there).
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


@triton.jit
def _tile_kernel(start_ptr, splat_ptr, u_ptr, v_ptr, a_ptr, b_ptr, c_ptr, alpha_ptr, rgb_ptr,
                 out_rgb_ptr, out_logt_ptr, W, H, tiles_x,
                 floor_: tl.constexpr, alpha_min: tl.constexpr, alpha_max: tl.constexpr,
                 log_t_min: tl.constexpr, TILE_: tl.constexpr, BATCH_: tl.constexpr):
    """Tile `pid`: accumulate colour and log transmittance of its pixels over its splats."""
    pid = tl.program_id(0)
    ty = pid // tiles_x
    tx = pid - ty * tiles_x
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
    log_t = tl.zeros([TILE_ * TILE_], dtype=tl.float32)
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
        live = (alpha >= alpha_min) & inb[None, :] & (log_t >= log_t_min)[:, None]
        alpha = tl.where(live, alpha, 0.0)
        ln = tl.log(1.0 - alpha)
        before = tl.cumsum(ln, axis=1) - ln
        w = alpha * tl.exp(log_t[:, None] + before)
        acc_r += tl.sum(w * r[None, :], axis=1)
        acc_g += tl.sum(w * g[None, :], axis=1)
        acc_b += tl.sum(w * b[None, :], axis=1)
        log_t += tl.sum(ln, axis=1)
        j += BATCH_
        open_ = (j < end) & (tl.max(log_t, axis=0) >= log_t_min)
    inside = (px < W) & (py < H)
    o = py * W + px
    tl.store(out_rgb_ptr + 3 * o, acc_r, mask=inside)
    tl.store(out_rgb_ptr + 3 * o + 1, acc_g, mask=inside)
    tl.store(out_rgb_ptr + 3 * o + 2, acc_b, mask=inside)
    tl.store(out_logt_ptr + o, log_t, mask=inside)


def tile_pairs(x0: torch.Tensor, y0: torch.Tensor, bw: torch.Tensor, bh: torch.Tensor,
               tiles_x: int, tiles_y: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(splat index per pair sorted by tile, front to back inside a tile; start of each tile's
    run, n_tiles + 1 entries) for splats with pixel boxes (x0, y0, width, height)."""
    dev = x0.device
    on = (bw > 0) & (bh > 0)
    tx0 = torch.div(x0, TILE, rounding_mode="floor")
    ty0 = torch.div(y0, TILE, rounding_mode="floor")
    ntx = torch.where(on, torch.div(x0 + bw - 1, TILE, rounding_mode="floor") - tx0 + 1, 0)
    nty = torch.where(on, torch.div(y0 + bh - 1, TILE, rounding_mode="floor") - ty0 + 1, 0)
    count = ntx * nty
    who = torch.repeat_interleave(torch.arange(len(count), device=dev), count)
    k = torch.arange(len(who), device=dev) - (torch.cumsum(count, 0) - count).index_select(0, who)
    w = ntx.index_select(0, who)
    tile = (ty0.index_select(0, who) + torch.div(k, w, rounding_mode="floor")) * tiles_x \
        + tx0.index_select(0, who) + k % w
    tile, perm = torch.sort(tile, stable=True)
    starts = torch.searchsorted(tile, torch.arange(tiles_x * tiles_y + 1, device=dev, dtype=tile.dtype))
    return who.index_select(0, perm).to(torch.int32), starts.to(torch.int32)


def composite(p: dict[str, torch.Tensor], boxes: tuple[torch.Tensor, ...], width: int, height: int,
              floor_: float, alpha_min: float, alpha_max: float,
              min_transmittance: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(colour (H*W, 3), log transmittance (H*W,)) of the projected splats `p` (front to back)."""
    dev = p["u"].device
    tiles_x, tiles_y = -(-width // TILE), -(-height // TILE)
    splat, starts = tile_pairs(*boxes, tiles_x, tiles_y)
    out_rgb = torch.zeros(width * height, 3, device=dev)
    out_logt = torch.zeros(width * height, device=dev)
    f32 = {k: p[k].float().contiguous() for k in ("u", "v", "a", "b", "c", "alpha", "rgb")}
    _tile_kernel[(tiles_x * tiles_y,)](
        starts, splat, f32["u"], f32["v"], f32["a"], f32["b"], f32["c"], f32["alpha"], f32["rgb"],
        out_rgb, out_logt, width, height, tiles_x,
        floor_=floor_, alpha_min=alpha_min, alpha_max=alpha_max, log_t_min=math.log(min_transmittance),
        TILE_=TILE, BATCH_=BATCH, num_warps=8)
    return out_rgb, out_logt
