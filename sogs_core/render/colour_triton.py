"""The colours of the drawn splat-views (`raster.drawn_colours`) as one Triton kernel (GPU only).

Why: in torch ops each million drawn splat-views gathers its SH rows (180 bytes a splat at
SH3) into a temporary, builds the 15 basis columns in ~50 small element-wise launches and
multiplies; the metric's output render (8 views of a 1M SH3 scene, ~6M drawn splat-views)
spent a large part of its time there, on the critical path of `compress`. Here one program per
block of splat-views reads each one's centre, camera position, f_dc and f_rest straight from
the scene's arrays and writes its three colours: no temporaries, one launch.

The same values as `raster.colours` up to float rounding (the basis of `model.sh.sh_basis`,
0.5 + SH_C0 * f_dc plus the bands, clamped at 0). Import fails (ImportError) where Triton is
missing; `raster` then uses the torch ops.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sogs_core.model.sh import SH_C0, SH_C1, SH_C2, SH_C3

BLOCK = 256


@triton.jit
def _band_sum(base, m, K: tl.constexpr, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14):
    """sum_k b_k * base[k] over one channel's K coefficients (K = 3, 8 or 15)."""
    acc = (b0 * tl.load(base, mask=m, other=0.0) + b1 * tl.load(base + 1, mask=m, other=0.0)
           + b2 * tl.load(base + 2, mask=m, other=0.0))
    if K > 3:
        acc += (b3 * tl.load(base + 3, mask=m, other=0.0) + b4 * tl.load(base + 4, mask=m, other=0.0)
                + b5 * tl.load(base + 5, mask=m, other=0.0) + b6 * tl.load(base + 6, mask=m, other=0.0)
                + b7 * tl.load(base + 7, mask=m, other=0.0))
    if K > 8:
        acc += (b8 * tl.load(base + 8, mask=m, other=0.0) + b9 * tl.load(base + 9, mask=m, other=0.0)
                + b10 * tl.load(base + 10, mask=m, other=0.0) + b11 * tl.load(base + 11, mask=m, other=0.0)
                + b12 * tl.load(base + 12, mask=m, other=0.0) + b13 * tl.load(base + 13, mask=m, other=0.0)
                + b14 * tl.load(base + 14, mask=m, other=0.0))
    return acc


@triton.jit
def _colour_kernel(sel_ptr, view_ptr, means_ptr, pos_ptr, dc_ptr, rest_ptr, out_ptr, P,
                   c0, c1, c20, c21, c22, c23, c24, c30, c31, c32, c33, c34, c35, c36,
                   K: tl.constexpr, BLOCK_: tl.constexpr):
    i = tl.program_id(0) * BLOCK_ + tl.arange(0, BLOCK_)
    m = i < P
    s = tl.load(sel_ptr + i, mask=m, other=0).to(tl.int64)
    r0 = 0.5 + c0 * tl.load(dc_ptr + 3 * s, mask=m, other=0.0)
    r1 = 0.5 + c0 * tl.load(dc_ptr + 3 * s + 1, mask=m, other=0.0)
    r2 = 0.5 + c0 * tl.load(dc_ptr + 3 * s + 2, mask=m, other=0.0)
    if K > 0:
        v = tl.load(view_ptr + i, mask=m, other=0).to(tl.int64)
        dx = tl.load(means_ptr + 3 * s, mask=m, other=0.0) - tl.load(pos_ptr + 3 * v, mask=m, other=0.0)
        dy = tl.load(means_ptr + 3 * s + 1, mask=m, other=0.0) - tl.load(pos_ptr + 3 * v + 1, mask=m, other=0.0)
        dz = tl.load(means_ptr + 3 * s + 2, mask=m, other=1.0) - tl.load(pos_ptr + 3 * v + 2, mask=m, other=0.0)
        inv = 1.0 / tl.maximum(tl.sqrt(dx * dx + dy * dy + dz * dz), 1e-12)
        x = dx * inv
        y = dy * inv
        z = dz * inv
        b0 = -c1 * y
        b1 = c1 * z
        b2 = -c1 * x
        zero = tl.zeros_like(x)
        b3, b4, b5, b6, b7 = zero, zero, zero, zero, zero
        b8, b9, b10, b11, b12, b13, b14 = zero, zero, zero, zero, zero, zero, zero
        if K > 3:
            xx = x * x
            yy = y * y
            zz = z * z
            b3 = c20 * x * y
            b4 = c21 * y * z
            b5 = c22 * (2 * zz - xx - yy)
            b6 = c23 * x * z
            b7 = c24 * (xx - yy)
            if K > 8:
                b8 = c30 * y * (3 * xx - yy)
                b9 = c31 * x * y * z
                b10 = c32 * y * (4 * zz - xx - yy)
                b11 = c33 * z * (2 * zz - 3 * xx - 3 * yy)
                b12 = c34 * x * (4 * zz - xx - yy)
                b13 = c35 * z * (xx - yy)
                b14 = c36 * x * (xx - 3 * yy)
        row = rest_ptr + s * (3 * K)
        r0 += _band_sum(row, m, K, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14)
        r1 += _band_sum(row + K, m, K, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14)
        r2 += _band_sum(row + 2 * K, m, K, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14)
    tl.store(out_ptr + 3 * i, tl.maximum(r0, 0.0), mask=m)
    tl.store(out_ptr + 3 * i + 1, tl.maximum(r1, 0.0), mask=m)
    tl.store(out_ptr + 3 * i + 2, tl.maximum(r2, 0.0), mask=m)


def drawn_colours(means: torch.Tensor, f_dc: torch.Tensor, f_rest: torch.Tensor, sel: torch.Tensor,
                  view: torch.Tensor, cam_pos: torch.Tensor) -> torch.Tensor:
    """(P, 3) colours of the splats `sel` seen from the cameras `view` (indices into cam_pos
    (V, 3)): `raster.colours` of them along camera -> splat. means (N, 3), f_dc (N, 3) and
    f_rest (N, 3K) of the same N splats, on one CUDA device."""
    k = f_rest.shape[1] // 3
    if k not in (0, 3, 8, 15):
        raise ValueError(f"SH coefficients per channel must be 0, 3, 8 or 15, not {k}")
    p = len(sel)
    out = torch.empty(p, 3, dtype=torch.float32, device=means.device)
    if p == 0:
        return out
    f32 = lambda x: x.to(torch.float32).contiguous()  # noqa: E731
    _colour_kernel[(triton.cdiv(p, BLOCK),)](
        sel.contiguous(), view.contiguous(), f32(means), f32(cam_pos), f32(f_dc), f32(f_rest), out, p,
        SH_C0, SH_C1, *SH_C2, *SH_C3, K=k, BLOCK_=BLOCK)
    return out
