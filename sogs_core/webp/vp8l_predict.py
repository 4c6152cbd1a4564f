"""VP8L's reversible transforms as our encoder uses them: subtract-green, then the spatial
predictor with one of the 14 modes per square tile, chosen to minimise the residuals' cost.

Pixels are flat (N, 4) int32 tensors in RGBA order (the image's own channel order; the format's
ARGB naming only matters for mode 0's opaque black and for subtract-green). Neighbours are read
from the flat array, which is exactly the decoder's view: the top-right neighbour of the last
column is the first pixel of the current row. Border pixels follow the format's rules whatever
the tile's mode: the first pixel predicts opaque black, the rest of row 0 its left neighbour,
column 0 its upper neighbour.
"""
from __future__ import annotations

import torch

from sogs_core.model.counting import count_labels

MODES = 14
BLACK = (0, 0, 0, 255)


def subtract_green(p: torch.Tensor) -> torch.Tensor:
    """R - G and B - G (mod 256); G and A unchanged."""
    out = p.clone()
    out[:, 0] = (p[:, 0] - p[:, 1]) & 255
    out[:, 2] = (p[:, 2] - p[:, 1]) & 255
    return out


def _avg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a + b) >> 1


class Neighbours:
    """L, T, TL, TR of every pixel of a flat image of width `width` (zeros off the image; the
    border rules override those pixels anyway)."""

    def __init__(self, p: torch.Tensor, width: int):
        n = p.shape[0]
        padded = torch.cat([torch.zeros(width + 1, 4, dtype=p.dtype, device=p.device), p])
        o = width + 1
        self.left = padded[o - 1:o - 1 + n]
        self.top = padded[o - width:o - width + n]
        self.top_left = padded[o - width - 1:o - width - 1 + n]
        self.top_right = padded[o - width + 1:o - width + 1 + n]

    def predict(self, mode: int) -> torch.Tensor:
        """The prediction of every pixel under `mode` (interior rule)."""
        L, T, TL, TR = self.left, self.top, self.top_left, self.top_right
        if mode == 0:
            return torch.tensor(BLACK, dtype=L.dtype, device=L.device).expand_as(L)
        if mode == 1:
            return L
        if mode == 2:
            return T
        if mode == 3:
            return TR
        if mode == 4:
            return TL
        if mode == 5:
            return _avg(_avg(L, TR), T)
        if mode == 6:
            return _avg(L, TL)
        if mode == 7:
            return _avg(L, T)
        if mode == 8:
            return _avg(TL, T)
        if mode == 9:
            return _avg(T, TR)
        if mode == 10:
            return _avg(_avg(L, TL), _avg(T, TR))
        if mode == 11:   # Select: L when |T - TL| (summed over channels) < |L - TL|, else T
            use_left = (T - TL).abs().sum(1, keepdim=True) < (L - TL).abs().sum(1, keepdim=True)
            return torch.where(use_left, L, T)
        if mode == 12:
            return (L + T - TL).clamp(0, 255)
        if mode == 13:
            a = _avg(L, T)
            d = a - TL
            return (a + torch.div(d, 2, rounding_mode="trunc")).clamp(0, 255)
        raise ValueError(f"no predictor mode {mode}")


def border_fix(res: torch.Tensor, p: torch.Tensor, nb: Neighbours, width: int) -> torch.Tensor:
    """Residuals of the border pixels by the format's fixed rules (in place)."""
    res[1:width] = (p[1:width] - nb.left[1:width]) & 255
    res[width::width] = (p[width::width] - nb.top[width::width]) & 255
    res[0] = (p[0] - torch.tensor(BLACK, dtype=p.dtype, device=p.device)) & 255
    return res


def tile_index(height: int, width: int, bits: int, device) -> torch.Tensor:
    """(N,) index of each pixel's tile of side 2**bits, tiles numbered in raster order."""
    ys = torch.arange(height, device=device) >> bits
    xs = torch.arange(width, device=device) >> bits
    tiles_x = -(-width >> bits)
    return (ys[:, None] * tiles_x + xs[None, :]).reshape(-1)


def channel_hist(res: torch.Tensor) -> torch.Tensor:
    """(4, 256) counts of each channel's residual values."""
    offs = torch.arange(4, device=res.device) * 256
    return count_labels((res + offs).long(), 1024).reshape(4, 256).float()


def _cost_table(hist: torch.Tensor) -> torch.Tensor:
    """(4 * 256,) -log2 frequency of each channel's residual values (a little smoothed)."""
    hist = hist + 0.1
    return (-torch.log2(hist / hist.sum(1, keepdim=True))).reshape(-1)


def tile_sums(values: torch.Tensor, height: int, width: int, bits: int) -> torch.Tensor:
    """Sum of a per-pixel (N,) tensor over each tile (raster order), by reshaping, not atomics."""
    side = 1 << bits
    th, tw = -(-height // side), -(-width // side)
    grid = torch.zeros(th * side, tw * side, dtype=values.dtype, device=values.device)
    grid[:height, :width] = values.reshape(height, width)
    return grid.reshape(th, side, tw, side).sum((1, 3)).reshape(-1)


def choose_modes(p: torch.Tensor, height: int, width: int, bits: int,
                 rounds: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Per tile, the mode whose residuals cost fewest bits under the image's residual statistics:
    first those of the single mode best for the whole image, then, for `rounds` - 1 more
    rounds, those of the previous round's choice. Returns (modes per tile, residuals (N, 4))."""
    nb = Neighbours(p, width)
    tiles = tile_index(height, width, bits, p.device)
    offs = torch.arange(4, device=p.device) * 256
    hists = torch.stack([channel_hist((p - nb.predict(m)) & 255) for m in range(MODES)])   # (14, 4, 256)
    tables = torch.stack([_cost_table(h) for h in hists])
    whole = (hists.reshape(MODES, -1) * tables).sum(1)
    cost = tables.index_select(0, whole.argmin().reshape(1))[0]   # the best single mode's statistics
    for r in range(max(rounds, 1)):
        per_mode = torch.stack([tile_sums(cost[((p - nb.predict(m)) & 255) + offs].sum(1), height, width, bits)
                                for m in range(MODES)])                          # (14, tiles)
        modes = per_mode.argmin(0)
        res = residuals(p, nb, modes, tiles, width)
        if r + 1 < rounds:
            cost = _cost_table(channel_hist(res))
    return modes, res


def residuals(p: torch.Tensor, nb: Neighbours, modes: torch.Tensor, tiles: torch.Tensor,
              width: int) -> torch.Tensor:
    """(N, 4) residuals (mod 256) of every pixel under its tile's mode and the border rules.
    Every mode in turn, selected per pixel: no list of the modes used and no masked writes,
    which are reads from the device."""
    pix_mode = modes.index_select(0, tiles)[:, None]
    res = torch.zeros_like(p)
    for m in range(MODES):
        res = torch.where(pix_mode == m, (p - nb.predict(m)) & 255, res)
    return border_fix(res, p, nb, width)
