"""PLAS: Parallel Linear Assignment Sorting (Morgenstern et al., ECCV 2024), our own torch version.

Why: SOG images compress well only when neighbouring texels hold similar splats. PLAS lays the
splats on a 2-D grid and repeatedly (coarse to fine) swaps them inside random groups of four cells
so that each cell moves towards a blurred copy of the grid. Written from the paper's description;
differences from the reference code, each chosen for speed or for non-square scenes:

* any H x W grid with H * W >= N. The N splats fill the first N cells in row-major order and the
  trailing cells (fewer than W) are masked: never swapped, and left out of the blur through
  normalised convolution (blur(values * mask) / blur(mask)). No splat is dropped.
* the target is a box blur computed with cumulative sums, so its cost does not grow with the
  radius (the reference convolves with a Gaussian kernel as wide as the radius).
* all groups of a level are solved at once as a batch of 4 x 4 assignment problems over the 24
  permutations (gather + argmin), on the GPU when there is one.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

PERMS_4 = torch.tensor(list(itertools.permutations(range(4))), dtype=torch.long)  # (24, 4)


@dataclass(frozen=True)
class PlasConfig:
    """Schedule of the sort. Defaults follow the reference where it has one."""

    radius_decay: float = 0.95          # radius multiplier per level
    min_blur_radius: float = 1.0        # last level's radius
    min_block_size: int = 4             # groups are drawn inside blocks of at least this side (reference: 16;
                                        # 4 keeps the last levels local: nd 1.490 vs 1.546 on gs_grid(1024))
    improvement_break: float = 1e-4     # leave a level when the relative gain falls below this
    max_iters_per_level: int = 64       # hard cap, so a level can never spin
    blur_passes: int = 1                # box passes of the target (2: tent, 3: near-Gaussian)


def grid_shape(n: int) -> tuple[int, int]:
    """(H, W) of the texture for n splats: W as splat-transform (multiple of 4), H just enough.

    Padding (H * W - n < W cells) sits at the end of the last row, where the format ignores it.
    """
    if n <= 0:
        raise ValueError("grid_shape needs at least one splat")
    w = max(4, int(math.ceil(math.sqrt(n) / 4)) * 4)
    h = int(math.ceil(n / w))
    if w > 16383 or h > 16383:
        raise ValueError(f"{n} splats exceed the 16383 x 16383 WebP limit of one SOG")
    return h, w


def _box_sum(x: torch.Tensor, r: int, dim: int) -> torch.Tensor:
    """Sum over the window [i - r, i + r] along `dim`, clipped at the borders (zero padding)."""
    length = x.shape[dim]
    c = torch.cumsum(x, dim=dim)
    zero_shape = list(x.shape)
    zero_shape[dim] = 1
    c = torch.cat([torch.zeros(zero_shape, dtype=x.dtype, device=x.device), c], dim=dim)
    idx = torch.arange(length, device=x.device)
    hi = torch.clamp(idx + r + 1, max=length)
    lo = torch.clamp(idx - r, min=0)
    return c.index_select(dim, hi) - c.index_select(dim, lo)


def box_blur_masked(values: torch.Tensor, mask: torch.Tensor, r: int, passes: int = 1) -> torch.Tensor:
    """Normalised box blur of (C, H, W) values where mask (H, W) is 1: the mean over valid cells.

    With passes > 1 the box is repeated with a half-width shrunk by sqrt(passes), which keeps the
    variance of a single box of half-width r and tends to a Gaussian."""
    a = max(1, int(round(r / math.sqrt(passes)))) if passes > 1 else r
    s = torch.cat([values * mask, mask[None]], 0)
    for _ in range(passes):
        s = _box_sum(_box_sum(s, a, 2), a, 1)
    return s[:-1] / s[-1:].clamp_min(1e-12)


def neighbor_distance(grid_hwc: torch.Tensor) -> float:
    """Mean L2 distance between horizontally and vertically adjacent cells (lower is better)."""
    g = grid_hwc.float()
    dx = (g[:, 1:] - g[:, :-1]).norm(dim=-1)
    dy = (g[1:] - g[:-1]).norm(dim=-1)
    return float((dx.sum() + dy.sum()) / (dx.numel() + dy.numel()))


def plas_sort(features: torch.Tensor, shape: tuple[int, int], seed: int = 0,
              config: PlasConfig = PlasConfig(),
              progress: Optional[Callable[[float], None]] = None) -> torch.Tensor:
    """Sort N feature rows (N, C) onto an H x W grid; returns `order` (N,) with order[cell] = row.

    Deterministic for a given seed and device. Rows are assumed comparable across columns
    (normalise them first). The first N cells in row-major order receive the N rows.
    """
    h, w = shape
    n, c = features.shape
    if n > h * w:
        raise ValueError(f"{n} rows do not fit a {h} x {w} grid")
    dev = features.device
    gen = torch.Generator(device=dev).manual_seed(seed)
    cells = h * w
    order = torch.randperm(n, generator=gen, device=dev)
    feats = features.float()
    mask = torch.zeros(cells, device=dev)
    mask[:n] = 1
    mask2d = mask.view(h, w)
    perms = PERMS_4.to(dev)
    flat_pick = (torch.arange(4, device=dev) * 4)[None, :] + perms  # (24, 4) into a 4x4 flattened
    cell_ids = torch.arange(cells, device=dev).view(h, w)

    radius = max(h, w) / 2.0 - 1.0
    levels = max(1, int(math.ceil(math.log(config.min_blur_radius / max(radius, config.min_blur_radius))
                                  / math.log(config.radius_decay))) + 1)
    level = 0
    grid = torch.zeros(cells, c, device=dev)
    while True:
        r = max(int(round(radius)), 1)
        block = max(2 * r + 2, config.min_block_size)
        block = min(block, h - h % 2, w - w % 2)
        block -= block % 2
        if block < 2:
            break
        for _ in range(config.max_iters_per_level):
            grid[:n] = feats[order]
            target = box_blur_masked(grid.T.reshape(c, h, w), mask2d, r, config.blur_passes).reshape(c, cells).T
            # random blocks: roll the cell grid by a random offset, cut whole blocks
            off = torch.randint(0, block, (2,), generator=gen, device=dev).tolist()
            rolled = torch.roll(cell_ids, shifts=(-off[0], -off[1]), dims=(0, 1))
            bh, bw = h // block, w // block
            blocks = rolled[: bh * block, : bw * block].reshape(bh, block, bw, block)
            blocks = blocks.permute(0, 2, 1, 3).reshape(bh * bw, block * block)
            shuffle = torch.rand(blocks.shape, generator=gen, device=dev).argsort(dim=1)
            groups = blocks.gather(1, shuffle).reshape(-1, 4)
            groups = groups[(groups < n).all(1)]
            if groups.numel() == 0:
                break
            x = grid[groups]                      # (G, 4, C) elements
            t = target[groups]                    # (G, 4, C) targets of their cells
            d = ((x * x).sum(-1)[:, :, None] + (t * t).sum(-1)[:, None, :]
                 - 2 * torch.bmm(x, t.transpose(1, 2)))           # d[g, i, j]: element i at cell j
            cost = d.reshape(-1, 16)[:, flat_pick].sum(-1)        # (G, 24)
            best_cost, best = cost.min(1)
            before = cost[:, 0].sum()
            gain = float((before - best_cost.sum()) / before.clamp_min(1e-12))
            dest = groups.gather(1, perms[best])                   # cell receiving element i
            order[dest.reshape(-1)] = order[groups.reshape(-1)]
            if gain < config.improvement_break:
                break
        level += 1
        if progress is not None:
            progress(min(1.0, level / levels))
        if r <= config.min_blur_radius:
            break
        radius *= config.radius_decay
    return order
