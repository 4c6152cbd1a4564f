"""PLAS: Parallel Linear Assignment Sorting (Morgenstern et al., ECCV 2024), our own version.

Why: SOG images compress well only when neighbouring texels hold similar splats. PLAS lays the
splats on a 2-D grid and, coarse to fine, swaps them inside random groups of four cells so that
each cell moves towards a blurred copy of the grid. The schedule follows the reference
(fraunhoferhhi/PLAS): per blur radius, several block placements ("configs"); per config, one
target and repeated group steps against it until the relative gain falls under a threshold.
Written from that description; what differs, each for speed, quality or non-square scenes:

* any H x W grid with H * W >= N. The N splats fill the first N cells in row-major order; the
  trailing cells (fewer than W) are padding: never swapped, and left out of the blur through a
  mask channel (the blur is normalised by the blurred mask). No splat is dropped.
* the target is a box blur from a summed-area table: its cost does not grow with the radius.
* the random groups of a block come from a keyed Feistel bijection of the block's cells (cycle
  walking), so a GPU thread computes its own group with no random permutation in memory; the
  same keys drive the torch step and the fused CUDA step (`plas_cuda`), which agree.
* on the GPU a whole config (its steps and the decision to stop) is one kernel launch that
  keeps the GPU to itself (`plas_cuda`), and the configs of a level left after it ends skip on
  the device: the host never waits for a step. The keys of step s derive from the config's base
  keys (`plas_steps.step_keys`), so host and device agree on them without a transfer.
* the first layout is not random but a principal-component one (`pca_layout`): the coarse
  levels then converge in fewer steps and the final neighbour distance is lower.
* a short schedule for CPUs (`PlasConfig.fast`, chosen by `plas_schedule("auto", ...)`).

State during the sort: `grid` (cells, CP) float32, or float16 with store_fp16, holds the centred
features of the splat in each cell, a mask channel (1 on real cells) and zero padding up to a
multiple of 4 channels; `order` (cells,) int32 holds the splat index of each cell (-1 on padding).
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np
import torch

from sogs_core.order.plas_steps import PERMS_4, block_permutation, run_level_stepwise
from sogs_core.settings import PlasConfig



def plas_features(means: torch.Tensor, quats: torch.Tensor, log_scales: torch.Tensor,
                  f_dc: torch.Tensor, opacity: torch.Tensor) -> torch.Tensor:
    """The attributes the images store, z-scored per column: what PLAS makes smooth."""
    t = torch.sign(means) * torch.log1p(means.abs())
    q = quats / quats.norm(dim=1, keepdim=True)
    q = q * torch.where(q[:, :1] < 0, -1.0, 1.0)
    f = torch.cat([t, f_dc, torch.sigmoid(opacity)[:, None], log_scales, q], 1).float()
    std = f.std(0)
    return (f - f.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))


def neighbor_distance(grid_hwc: torch.Tensor) -> float:
    """Mean L2 distance between horizontally and vertically adjacent cells (lower is better)."""
    g = grid_hwc.float()
    dx = (g[:, 1:] - g[:, :-1]).norm(dim=-1)
    dy = (g[1:] - g[:-1]).norm(dim=-1)
    return float((dx.sum() + dy.sum()) / (dx.numel() + dy.numel()))


# -- the torch step (CPU, or a GPU without CuPy) -------------------------------------------------
def box_target(grid: torch.Tensor, h: int, w: int, r: int, mask_ch: int) -> torch.Tensor:
    """Mean of each cell's (2r+1)^2 window over real cells, from a summed-area table.

    Windows are clipped at the borders; the mask channel's window sum is the count of real
    cells, so padding never pulls the target. Returns (cells, CP) with the mask channel at 1."""
    cp = grid.shape[1]
    s = torch.zeros(h + 1, w + 1, cp, dtype=grid.dtype, device=grid.device)
    s[1:, 1:] = grid.view(h, w, cp)
    s = s.cumsum(0).cumsum(1)
    dev = grid.device
    y1 = torch.clamp(torch.arange(h, device=dev) + r + 1, max=h)
    y0 = torch.clamp(torch.arange(h, device=dev) - r, min=0)
    x1 = torch.clamp(torch.arange(w, device=dev) + r + 1, max=w)
    x0 = torch.clamp(torch.arange(w, device=dev) - r, min=0)
    a = s.index_select(0, y1) - s.index_select(0, y0)
    b = a.index_select(1, x1) - a.index_select(1, x0)
    return (b / b[..., mask_ch:mask_ch + 1].clamp_min(0.5)).reshape(h * w, cp)


class TorchPlasBackend:
    """Reference implementation of one target and one group step, in plain torch ops."""

    name = "torch"

    def __init__(self, h: int, w: int, n: int, cp: int, mask_ch: int, device: torch.device) -> None:
        self.h, self.w, self.n, self.mask_ch = h, w, n, mask_ch
        self.perms = PERMS_4.to(device)
        # (16, 24): column p picks d[0][P0], d[1][P1], d[2][P2], d[3][P3] from a flat 4 x 4; a matmul
        # sums them much faster on a CPU than gathering (G, 24, 4) and summing
        pick = torch.zeros(16, 24)
        for p, perm in enumerate(PERMS_4.tolist()):
            for i, j in enumerate(perm):
                pick[4 * i + j, p] = 1.0
        self.pick = pick.to(device)

    def target(self, grid: torch.Tensor, r: int, out: torch.Tensor) -> None:
        out.copy_(box_target(grid.float(), self.h, self.w, r, self.mask_ch))

    def group_cells(self, block: int, sy: int, sx: int, keys: tuple[int, ...]) -> torch.Tensor:
        """(blocks * B^2 / 4, 4) cell ids of every group of this step, the kernel's enumeration."""
        dev = self.perms.device
        local = block_permutation(block * block, keys, dev).view(-1, 4)
        lr, lc = local // block, local % block
        nby, nbx = self.h // block, self.w // block
        rows = (torch.arange(nby, device=dev)[:, None, None, None] * block + lr + sy) % self.h
        cols = (torch.arange(nbx, device=dev)[None, :, None, None] * block + lc + sx) % self.w
        return (rows * self.w + cols).reshape(-1, 4)

    def step(self, grid: torch.Tensor, order: torch.Tensor, target: torch.Tensor, block: int,
             sy: int, sx: int, keys: tuple[int, ...], sums: torch.Tensor) -> None:
        cells = self.group_cells(block, sy, sx, tuple(int(k) for k in keys))
        cells = cells[(cells < self.n).all(1)]
        x = grid[cells].float()                                   # (G, 4, CP) elements
        t = target[cells].float()                                 # (G, 4, CP) their cells' targets
        diff = x[:, :, None, :] - t[:, None, :, :]
        d = (diff * diff).sum(-1)                                 # d[g, i, j]: element i at cell j
        cost = d.reshape(-1, 16) @ self.pick                      # (G, 24)
        best_cost, best = cost.min(1)
        sums.copy_(torch.stack([cost[:, 0].double().sum(), best_cost.double().sum()]))
        dest = cells.gather(1, self.perms[best]).reshape(-1)      # cell receiving element i
        src = cells.reshape(-1)
        order[dest] = order[src]
        grid[dest] = x.reshape(-1, x.shape[-1]).to(grid.dtype)

    def run_level(self, grid: torch.Tensor, order: torch.Tensor, target: torch.Tensor, r: int,
                  block: int, draws: list, brk: float, min_configs: int, cap: int,
                  steps_out: torch.Tensor) -> None:
        run_level_stepwise(self, grid, order, target, r, block, draws, brk, min_configs, cap, steps_out)


def _backend(kind: str, h: int, w: int, n: int, cp: int, mask_ch: int, device: torch.device,
             dtype: torch.dtype = torch.float32):
    if kind not in ("auto", "torch", "cuda"):
        raise ValueError(f"unknown PLAS backend {kind!r} (auto, torch, cuda)")
    if kind != "torch" and device.type == "cuda":
        try:
            from sogs_core.order.plas_cuda import CudaPlasBackend
            return CudaPlasBackend(h, w, n, cp, mask_ch, device, dtype)
        except ImportError:
            if kind == "cuda":
                raise
    elif kind == "cuda":
        raise ValueError("the cuda PLAS backend needs features on a CUDA device")
    return TorchPlasBackend(h, w, n, cp, mask_ch, device)


def level_radii(h: int, w: int, config: PlasConfig) -> list[int]:
    """Integer blur radii, coarse to fine: side/2 - 1 shrinking by radius_decay down to the minimum."""
    radius = max(h, w) / 2.0 - 1.0
    if config.start_radius:
        radius = min(radius, float(config.start_radius))
    out = []
    while True:
        out.append(max(1, int(radius)))
        coarse = config.coarse_radius and radius >= config.coarse_radius
        radius *= config.coarse_decay if coarse else config.radius_decay
        if radius < config.min_blur_radius:
            return out


def block_side(r: int, h: int, w: int, config: PlasConfig) -> int:
    """Even block side for radius r: block_factor x (the filter width + 1), at least min_block_size,
    at most max_block_size, inside the grid."""
    b = max(int(config.block_factor * (2 * r + 2)), config.min_block_size)
    if config.max_block_size:
        b = min(b, max(config.max_block_size, config.min_block_size))
    b = min(b, h, w)
    return b - b % 2


def pca_layout(feats: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """A first layout with global order already in it: splats sorted by their first principal
    component fill the rows in bands of w, and each row is sorted by the second component.
    Returns (n,) splat indices for the first n cells. feats: (n, c) centred."""
    n = feats.shape[0]
    sample = feats[::max(1, n // 65536)]                  # a strided sample: deterministic
    cov = (sample.T @ sample).double() / max(1, sample.shape[0] - 1)
    vecs = torch.linalg.eigh(cov).eigenvectors[:, -2:].flip(1).to(feats.dtype)   # top two, largest first
    pc = feats @ vecs
    by_pc1 = torch.argsort(pc[:, 0])
    cells = torch.full((h * w,), -1, dtype=torch.long, device=feats.device)
    cells[:n] = by_pc1
    key = torch.full((h * w,), float("inf"), device=feats.device)
    key[:n] = pc[by_pc1, 1]
    within = torch.argsort(key.view(h, w), dim=1)          # padding (inf) stays at the row's end
    cells = cells.view(h, w).gather(1, within).reshape(-1)
    return cells[:n]


def plas_sort(features: torch.Tensor, shape: tuple[int, int], seed: int = 0,
              config: PlasConfig = PlasConfig(),
              progress: Optional[Callable[[float], None]] = None,
              backend: str = "auto", stats: Optional[dict] = None) -> torch.Tensor:
    """Sort N feature rows (N, C) onto an H x W grid; returns `order` (N,) with order[cell] = row.

    Deterministic for a given seed and backend. Rows are assumed comparable across columns
    (normalise them first). The first N cells in row-major order receive the N rows. `stats`,
    when given, receives the counts of levels, configs and steps.
    """
    h, w = shape
    n, c = features.shape
    if n > h * w:
        raise ValueError(f"{n} rows do not fit a {h} x {w} grid")
    dev = features.device
    rng = np.random.default_rng(seed)
    cells = h * w
    mask_ch = c
    cp = (c + 1 + 3) // 4 * 4
    feats = features.float()
    feats = feats - feats.mean(0)          # centred: the summed-area table keeps its precision
    if config.init == "random":
        start = torch.from_numpy(rng.permutation(n)).to(dev)
    elif config.init == "pca":
        start = pca_layout(feats, h, w)
    else:
        raise ValueError(f"unknown PLAS init {config.init!r} (random, pca)")
    dtype = torch.float16 if config.store_fp16 else torch.float32
    grid = torch.zeros(cells, cp, device=dev, dtype=dtype)
    grid[:n, :c] = feats[start].to(dtype)
    grid[:n, mask_ch] = 1.0
    order = torch.full((cells,), -1, dtype=torch.int32, device=dev)
    order[:n] = start.to(torch.int32)
    if min(h, w) < 2 or n < 4:
        return order[:n].long()

    be = _backend(backend, h, w, n, cp, mask_ch, dev, dtype)
    target = torch.empty_like(grid)
    radii = level_radii(h, w, config)
    # steps run by each config of each level (0: skipped), read once at the end
    steps = torch.zeros(len(radii), config.max_configs, dtype=torch.int32, device=dev)
    per_level: list = []
    # on the GPU the host queues level li, then waits for level li - 1 to finish: the queue holds
    # at most two levels (progress lags by one) and the GPU never idles between levels
    done = [torch.cuda.Event() for _ in radii] if dev.type == "cuda" else []
    t_prev = time.perf_counter()

    def finished(li: int) -> None:
        nonlocal t_prev
        if done:
            done[li].synchronize()
        t_now = time.perf_counter()
        per_level[li] = per_level[li] + (t_now - t_prev,)
        t_prev = t_now
        if progress is not None:
            progress((li + 1) / len(radii))

    for li, r in enumerate(radii):
        block = block_side(r, h, w, config)
        if block < 2:
            break
        brk = (config.fine_break if r < config.fine_radius else
               config.mid_break if r < config.mid_radius else config.improvement_break)
        # every config's offsets and keys are drawn up front: the device decides how many run
        draws = []
        for _ in range(config.max_configs):
            sy, sx = (int(v) for v in rng.integers(0, block, 2))
            draws.append((sy, sx, tuple(int(k) for k in rng.integers(0, 1 << 32, 4, dtype=np.uint64))))
        be.run_level(grid, order, target, r, block, draws, brk, config.min_configs, config.max_iters,
                     steps[li])
        per_level.append((r, block))
        if done:
            done[li].record()
            if li > 0:
                finished(li - 1)
        else:
            finished(li)
    if done and per_level:
        finished(len(per_level) - 1)
    if stats is not None:
        counts = steps.cpu()
        stats.update(levels=len(radii), configs=int((counts > 0).sum()), steps=int(counts.sum()),
                     backend=be.name + ("" if getattr(be, "persistent", True) else "-per-step"),
                     # seconds: from the previous level's end to this one's (GPU time on a GPU)
                     per_level=[(r, b, int((counts[i] > 0).sum()), int(counts[i].sum()), secs)
                                for i, (r, b, secs) in enumerate(per_level)])
    return order[:n].long()            # padding never moves: the first n cells hold every splat once
