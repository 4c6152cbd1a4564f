"""Nearest-centroid search fused into one Triton kernel: matmul tiles with a running argmin.

Why: with 65536 centroids the N x P distance matrix of 1M splats holds 69 billion entries; the
torch path writes and re-reads it in batches (seconds per Lloyd step). Here each program keeps a
block of rows in registers, streams the centroids through tensor-core dot products (tf32 by
default) and keeps only the best index and distance per row, so memory traffic is one pass over
the centroids per row block. Rows and centroids are zero-padded to a power-of-two width.

Exactness: tf32 products round operands to 10 mantissa bits, so distances taken as
|c|^2 - 2 x.c carry errors of ~1e-3 |x||c|, large against the small distances of a fine palette
(top-1 in tf32 alone loses inertia; bench/NOTES.md). So the kernel
keeps two candidates per row and the caller rescores both in float32; the reported distances
are exact float32. `bench/gpu_check.py` counts labels that differ from the float32 search;
`precision="ieee"` gives float32 products throughout (slow: no tensor cores).

Import fails (ImportError) where Triton is missing; `cells.CellSearch` and `kmeans.nearest_fn`
then use torch.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _scan_tile(x, c_ptr, csq_ptr, start, end, b1, i1, b2, i2, D: tl.constexpr, BLOCK_N: tl.constexpr,
               PRECISION: tl.constexpr):
    """Fold centroids start .. min(start + BLOCK_N, end) into each row's two best (b, i)."""
    lane = tl.arange(0, BLOCK_N)
    dims = tl.arange(0, D)
    cols = start + lane
    c = tl.load(c_ptr + cols[None, :] * D + dims[:, None], mask=cols[None, :] < end, other=0.0)
    csq = tl.load(csq_ptr + cols, mask=cols < end, other=float("inf"))
    dist = csq[None, :] - 2.0 * tl.dot(x, c, input_precision=PRECISION)
    m1 = tl.min(dist, axis=1)
    a1 = tl.argmin(dist, axis=1).to(tl.int32)
    dist = tl.where(lane[None, :] == a1[:, None], float("inf"), dist)
    m2 = tl.min(dist, axis=1)
    a2 = tl.argmin(dist, axis=1).to(tl.int32) + start
    a1 = a1 + start
    new_first = m1 < b1
    # new best from this tile: the runner-up is the better of the old best and the tile's second
    nb2 = tl.where(new_first, tl.where(b1 <= m2, b1, m2), tl.where(m1 < b2, m1, b2))
    ni2 = tl.where(new_first, tl.where(b1 <= m2, i1, a2), tl.where(m1 < b2, a1, i2))
    return tl.where(new_first, m1, b1), tl.where(new_first, a1, i1), nb2, ni2


@triton.jit
def _nearest2_cells_kernel(x_ptr, c_ptr, csq_ptr, idx_ptr, rows_ptr, block_cell_ptr, cell_start_ptr,
                           near_ptr, D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                           PROBE: tl.constexpr, PRECISION: tl.constexpr):
    """The two best of each row among the centroids of its cell's PROBE nearest cells. A block
    holds rows of one cell (row id -1 pads); centroids are sorted by cell, cell j owning
    cell_start[j] .. cell_start[j + 1]; near (C, PROBE) lists each cell's nearest cells."""
    pid = tl.program_id(0)
    rows = tl.load(rows_ptr + pid * BLOCK_M + tl.arange(0, BLOCK_M))
    ok = rows >= 0
    dims = tl.arange(0, D)
    x = tl.load(x_ptr + rows[:, None] * D + dims[None, :], mask=ok[:, None], other=0.0)
    cell = tl.load(block_cell_ptr + pid)
    live = (cell >= 0).to(tl.int32)    # a block of padding only (cell -1) scans nothing
    cell = cell * live
    b1 = tl.full((BLOCK_M,), float("inf"), tl.float32)
    b2 = tl.full((BLOCK_M,), float("inf"), tl.float32)
    i1 = tl.zeros((BLOCK_M,), tl.int32)
    i2 = tl.zeros((BLOCK_M,), tl.int32)
    for p in range(PROBE):
        nc = tl.load(near_ptr + cell * PROBE + p)
        lo = tl.load(cell_start_ptr + nc)
        hi = lo + (tl.load(cell_start_ptr + nc + 1) - lo) * live
        for start in tl.range(lo, hi, BLOCK_N):
            b1, i1, b2, i2 = _scan_tile(x, c_ptr, csq_ptr, start, hi, b1, i1, b2, i2, D, BLOCK_N, PRECISION)
    tl.store(idx_ptr + rows * 2, i1, mask=ok)
    tl.store(idx_ptr + rows * 2 + 1, i2, mask=ok)


@triton.jit
def _nearest2_kernel(x_ptr, c_ptr, csq_ptr, idx_ptr, n_rows, n_cent,
                     D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                     PRECISION: tl.constexpr):
    """The two centroids of smallest |c|^2 - 2 x.c per row, as (idx[row, 0], idx[row, 1])."""
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    dims = tl.arange(0, D)
    x = tl.load(x_ptr + rows[:, None] * D + dims[None, :], mask=rows[:, None] < n_rows, other=0.0)
    b1 = tl.full((BLOCK_M,), float("inf"), tl.float32)
    b2 = tl.full((BLOCK_M,), float("inf"), tl.float32)
    i1 = tl.zeros((BLOCK_M,), tl.int32)
    i2 = tl.zeros((BLOCK_M,), tl.int32)
    for start in tl.range(0, n_cent, BLOCK_N):
        b1, i1, b2, i2 = _scan_tile(x, c_ptr, csq_ptr, start, n_cent, b1, i1, b2, i2, D, BLOCK_N, PRECISION)
    ok = rows < n_rows
    tl.store(idx_ptr + rows * 2, i1, mask=ok)
    tl.store(idx_ptr + rows * 2 + 1, i2, mask=ok)


def padded_width(d: int) -> int:
    """Power-of-two width >= 16 that tl.dot accepts."""
    w = 16
    while w < d:
        w *= 2
    return w


def pad_rows(x: torch.Tensor, width: int) -> torch.Tensor:
    """Contiguous float32 copy of x with zero columns up to width (zeros change no distance)."""
    out = torch.zeros(len(x), width, dtype=torch.float32, device=x.device)
    out[:, :x.shape[1]] = x
    return out


def nearest(xp: torch.Tensor, x: torch.Tensor, centroids: torch.Tensor, mean: torch.Tensor,
            precision: str = "tf32", block_m: int = 128, block_n: int = 64, num_warps: int = 4,
            num_stages: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels int64, squared distances float32) of rows x against centroids (P, d).

    xp: the rows minus `mean`, padded (pad_rows); centring shrinks |x| and |c|, and with them
    the rounding of the products. The kernel keeps each row's two best candidates; their exact
    float32 distances pick the label, so a swap needs the true best to rank third in tf32."""
    n, width = xp.shape
    cp = pad_rows(centroids - mean, width)
    csq = (cp * cp).sum(1)
    idx = torch.empty(n, 2, dtype=torch.int32, device=xp.device)
    grid = (triton.cdiv(n, block_m),)
    _nearest2_kernel[grid](xp, cp, csq, idx, n, len(cp), D=width, BLOCK_M=block_m,
                           BLOCK_N=block_n, PRECISION=precision, num_warps=num_warps,
                           num_stages=num_stages)
    return _rescore(x, centroids, idx.long())


def _rescore(x: torch.Tensor, centroids: torch.Tensor, cand: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The better of each row's two candidates (N, 2) by exact float32 distance."""
    d0 = ((x - centroids[cand[:, 0]]) ** 2).sum(1)
    d1 = ((x - centroids[cand[:, 1]]) ** 2).sum(1)
    second = d1 < d0
    return torch.where(second, cand[:, 1], cand[:, 0]), torch.where(second, d1, d0)


def nearest_cells(xp: torch.Tensor, x: torch.Tensor, centroids: torch.Tensor, mean: torch.Tensor,
                  cells, precision: str = "tf32", block_m: int = 64, block_n: int = 64,
                  num_warps: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Like `nearest`, but each row searches only its coarse cell's probed neighbourhood
    (`cells.CellLayout`): rows and centroids re-sorted by cell, one kernel over row blocks."""
    n, width = xp.shape
    cp = pad_rows(centroids[cells.cent_order] - mean, width)
    csq = (cp * cp).sum(1)
    rows = cells.row_blocks(block_m)
    idx = torch.zeros(n, 2, dtype=torch.int32, device=xp.device)
    _nearest2_cells_kernel[(len(rows.block_cell),)](
        xp, cp, csq, idx, rows.rows, rows.block_cell, cells.cent_start, cells.near, D=width, BLOCK_M=block_m,
        BLOCK_N=block_n, PROBE=cells.near.shape[1], PRECISION=precision, num_warps=num_warps)
    return _rescore(x, centroids, cells.cent_order[idx.long()])
