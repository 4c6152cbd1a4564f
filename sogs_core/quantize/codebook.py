"""Shared 256-entry 1-D codebooks (scales, sh0, SH palette values) by exact 1-D k-means.

Why k-means and not a uniform grid: log-scales and colours are far from uniform (dense centre,
long tails), and 256 levels placed by Lloyd's algorithm minimise the squared error of exactly the
values we store. In 1-D the clusters of sorted data are contiguous runs, so one sort plus prefix
sums make each Lloyd step O(k log M) instead of O(k M): a 3M-value codebook costs one sort.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from sogs_core.model.counting import count_labels
from sogs_core.model.sorting import sort_with_order


def kmeans_1d(values: torch.Tensor, k: int = 256, max_iters: int = 200,
              tol: float = 1e-7, pin_ends: bool = False,
              density_alpha: float = 1.0,
              importance: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit k sorted centroids to `values` (any shape); returns (codebook (k,) float32, labels).

    labels has the shape of `values`, dtype uint8 for k <= 256 (int64 otherwise), and holds for
    each value the index of its nearest centroid. With fewer distinct values than k, the codebook
    holds each distinct value once (exact), padded with the largest.

    pin_ends keeps the first and last level at the smallest and largest value: plain Lloyd pulls
    the end levels inwards to the mean of their sparse tail cells, so the most extreme values (the
    largest splats, the brightest colours: what a viewer shows most) get the worst error. Pinned,
    those worst errors drop at a few bytes' cost (bench/NOTES.md).

    density_alpha < 1 weighs each value by (values in its histogram bin)^(alpha - 1), so a bin of
    c values counts c^alpha in the squared error: levels move from the dense centre to the sparse
    tails. 1 is plain k-means; `quantize.weights.TAIL_WEIGHT` is the alpha the scale and colour
    codebooks use. Values with no more distinct values than histogram bins (a decoded lossy
    input, e.g. SOG v1's 8-bit scales) are fitted plainly: plain k-means puts levels on those
    values exactly, where weighting would flatten their frequent levels (bench/NOTES.md).

    importance (shape of `values`, >= 0) multiplies each value's weight: how much its error
    shows in a picture (a large opaque splat's scale more than a faint speck's).
    """
    if importance is not None:
        return _kmeans_1d_importance(values, importance, k, max_iters, tol, pin_ends, density_alpha)
    return _kmeans_1d_sorted(values, _sorted_plain(values), k, max_iters, tol, pin_ends, density_alpha)


def _sorted_plain(values: torch.Tensor) -> torch.Tensor:
    """The values flattened and sorted as float64, as the plain fit sorts them."""
    if values.is_cuda:
        return torch.sort(values.reshape(-1).to(torch.float64)).values
    # numpy sorts float32 faster than torch sorts float64 on a CPU (bench/NOTES.md); the
    # cast after sorting keeps the order, so the result is the same
    return torch.from_numpy(np.sort(values.reshape(-1).to(torch.float32).numpy())).to(torch.float64)


def _kmeans_1d_sorted(values: torch.Tensor, srt: torch.Tensor, k: int, max_iters: int, tol: float,
                      pin_ends: bool, density_alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """`kmeans_1d` without weights per value, from `values` already sorted (`srt`)."""
    uniq = torch.unique_consecutive(srt)
    if uniq.numel() <= k:
        return _labelled(values, torch.cat([uniq, uniq[-1:].expand(k - uniq.numel())]), k, shorten=False)
    else:
        idx, hist, lo, width = _histogram(srt, k)
        continuous = uniq.numel() > len(hist)
        weights, density = _density_weights(idx, hist, density_alpha if continuous else 1.0)
        zero = torch.zeros(1, dtype=torch.float64, device=srt.device)
        if weights is None:
            prefix, wprefix = torch.cat([zero, torch.cumsum(srt, 0)]), None
        else:
            prefix = torch.cat([zero, torch.cumsum(srt * weights, 0)])
            wprefix = _to_host(torch.cat([zero, torch.cumsum(weights, 0)]))
        cb = _fit_levels(srt, uniq, prefix, wprefix, density, lo, width, k, max_iters, tol, pin_ends)
    return _labelled(values, cb, k)


def _kmeans_1d_importance(values: torch.Tensor, importance: torch.Tensor, k: int, max_iters: int,
                          tol: float, pin_ends: bool,
                          density_alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """`kmeans_1d` with a weight per value: the values sorted with their weights (argsort), each
    weight times the density weight of its histogram bin, then the same weighted Lloyd steps.
    Values with no more distinct values than bins are fitted as `kmeans_1d` fits them."""
    srt, perm = sort_with_order(values)
    w = importance.reshape(-1).to(torch.float64).index_select(0, perm).clamp_min(0.0)
    uniq = torch.unique_consecutive(srt)
    if uniq.numel() <= k:
        return _labelled(values, torch.cat([uniq, uniq[-1:].expand(k - uniq.numel())]), k, shorten=False)
    else:
        idx, hist, lo, width = _histogram(srt, k)
        if uniq.numel() <= len(hist):    # decoded codes: plain k-means keeps their levels exact
            # from this sort where it is the plain fit's (float32 values, or any on a GPU)
            plain = srt if values.is_cuda or values.dtype == torch.float32 else _sorted_plain(values)
            return _kmeans_1d_sorted(values, plain, k, max_iters, tol, pin_ends, density_alpha)
        dens, _ = _density_weights(idx, hist, density_alpha)
        if dens is not None:
            w = w * dens
        w = w + 1e-12 * float(w.max().clamp_min(1e-30))     # every value keeps a trace of weight
        density = torch.bincount(idx, weights=w, minlength=len(hist))
        zero = torch.zeros(1, dtype=torch.float64, device=srt.device)
        prefix = torch.cat([zero, torch.cumsum(srt * w, 0)])
        wprefix = _to_host(torch.cat([zero, torch.cumsum(w, 0)]))
        cb = _fit_levels(srt, uniq, prefix, wprefix, density, lo, width, k, max_iters, tol, pin_ends)
    return _labelled(values, cb, k, by_sort=(srt, perm))


def _fit_levels(srt: torch.Tensor, uniq: torch.Tensor, prefix: torch.Tensor, wprefix: Optional[np.ndarray],
                density: torch.Tensor, lo: float, width: float, k: int, max_iters: int, tol: float,
                pin_ends: bool) -> torch.Tensor:
    """k levels for sorted values `srt` (distinct values `uniq`), started where the weighted
    `density` puts them and polished by Lloyd steps on the prefix sums."""
    cb = _companded_init(density, lo, width, k)
    if cb.numel() < k:  # heavy ties at quantiles: fill from the distinct values evenly
        extra = uniq[torch.linspace(0, uniq.numel() - 1, k, device=srt.device).round().long()]
        cb = torch.unique(torch.cat([cb, extra]))[:k]
        while cb.numel() < k:
            cb = torch.unique(torch.cat([cb, uniq[torch.randperm(uniq.numel(), device=srt.device)[:k]]]))[:k]
    return torch.from_numpy(_lloyd(_to_host(srt), _to_host(prefix), cb.cpu().numpy(), max_iters, tol,
                                   pin_ends, wprefix)).to(srt.device)


#: how far a fitted level may move to be written with fewer decimals, as a fraction of the gap to
#: its nearer neighbour or of the codebook's median gap, whichever is smaller: a hundredth of a
#: typical step, where the values a level serves are half a step off on average
SHORT_DECIMAL_SHIFT = 0.01


def short_decimals(levels: np.ndarray, shift: float = SHORT_DECIMAL_SHIFT) -> np.ndarray:
    """Each level of an ascending codebook rounded to the fewest decimal places that keep it
    within `shift` of the gap to its nearer distinct neighbour (and of the median gap: a lone
    level in a sparse tail serves its value almost exactly). meta.json writes every level as a
    decimal, so a fitted level's nine digits are bytes of the file. The two end levels stay as
    they are (`pin_ends` puts the extreme values there exactly), as does a level with no
    distinct neighbour."""
    lv = np.asarray(levels, np.float64)
    gaps = np.full(lv.shape, np.inf)
    diff = np.diff(lv)
    gaps[1:] = np.where(diff > 0, diff, np.inf)
    gaps[:-1] = np.minimum(gaps[:-1], np.where(diff > 0, diff, np.inf))
    finite = gaps[np.isfinite(gaps)]
    tol = shift * np.minimum(gaps, np.median(finite) if finite.size else np.inf)
    out = lv.copy()
    todo = np.isfinite(tol)
    todo[[0, -1]] = False
    for places in range(10):
        rounded = np.round(lv, places)
        ok = todo & (np.abs(rounded - lv) <= tol)
        out[ok] = rounded[ok]
        todo &= ~ok
        if not todo.any():
            break
    return out


def _labelled(values: torch.Tensor, cb: torch.Tensor, k: int, shorten: bool = True,
              by_sort: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(the codebook as float32, each value's nearest level in the shape of `values`); fitted
    levels are first written shorter (`short_decimals`), levels that are the input's own values
    (`shorten` False) stay exact. `by_sort`: the flat values sorted and the permutation that
    sorts them, when the fit made them (`nearest_in_sorted`: the same labels, fewer steps)."""
    if shorten:
        cb = torch.from_numpy(short_decimals(cb.cpu().numpy())).to(cb.device)
    cb32 = cb.to(torch.float32)
    if by_sort is None:
        labels = nearest_index(values.reshape(-1).to(torch.float32), cb32)
    else:
        labels = nearest_in_sorted(by_sort[0], by_sort[1], cb32)
    return cb32, labels.to(torch.uint8 if k <= 256 else torch.int64).reshape(values.shape)


def _to_host(t: torch.Tensor) -> np.ndarray:
    """A device tensor as a host array, through page-locked memory: for a large scene's sorted
    values and prefix sums a pinned copy is far faster than a plain pageable `.cpu()`, once
    torch's pinned-block cache holds a buffer of that size (only the first allocation of each
    size is slow; bench/NOTES.md)."""
    if not t.is_cuda:
        return t.numpy()
    host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    host.copy_(t, non_blocking=True)
    torch.cuda.current_stream(t.device).synchronize()
    return host.numpy()


def _lloyd(srt: np.ndarray, prefix: np.ndarray, cb: np.ndarray, max_iters: int, tol: float,
           pin_ends: bool, wprefix: Optional[np.ndarray] = None) -> np.ndarray:
    """Lloyd steps on sorted values (float64) with their prefix sums, on the host: each step is
    a searchsorted of k-1 boundaries and k means, microseconds in numpy, where on a GPU the same
    step is ten small kernel launches and a sync, which add up to a fixed cost on every file
    (bench/NOTES.md). With `wprefix` (prefix sums of the values'
    weights) `prefix` holds the weighted values' sums and each level is a weighted mean."""
    m = len(srt)
    span = tol * max(float(srt[-1] - srt[0]), 1e-30)
    for _ in range(max_iters):
        bounds = (cb[:-1] + cb[1:]) / 2
        ends = np.searchsorted(srt, bounds, side="right")
        starts = np.concatenate([[0], ends])
        ends = np.concatenate([ends, [m]])
        counts = (ends - starts).astype(np.float64) if wprefix is None else wprefix[ends] - wprefix[starts]
        sums = prefix[ends] - prefix[starts]
        new = np.where(counts > 0, sums / np.where(counts > 0, counts, 1.0), cb)
        new = np.sort(new)
        if pin_ends:
            new[0], new[-1] = srt[0], srt[-1]
        shift = float(np.abs(new - cb).max())
        cb = new
        if shift <= span:
            break
    return cb


BINS_PER_LEVEL = 16


def _histogram(srt: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    """(bin of each sorted value, values per bin, lowest value, bin width): k x BINS_PER_LEVEL
    equal bins over the values' range, the density estimate of the start and of the weights."""
    lo, hi = float(srt[0]), float(srt[-1])
    bins = k * BINS_PER_LEVEL
    width = (hi - lo) / bins
    idx = ((srt - lo) / width).long().clamp_(0, bins - 1)
    return idx, torch.bincount(idx, minlength=bins).to(torch.float64), lo, width


def _density_weights(idx: torch.Tensor, hist: torch.Tensor,
                     alpha: float) -> tuple[Optional[torch.Tensor], torch.Tensor]:
    """(per-value weights, None for alpha 1; the weighted values per bin) from `_histogram`'s
    bins: a bin of c values weighs c^alpha in all, each of its values c^(alpha - 1)."""
    if alpha == 1.0:
        return None, hist
    return hist.pow(alpha - 1.0).index_select(0, idx), hist.pow(alpha)


def _companded_init(density: torch.Tensor, lo: float, width: float, k: int) -> torch.Tensor:
    """Starting levels spaced by the cube root of the (weighted) density per bin of
    `_histogram` (Panter-Dite), which is where the optimal quantizer's levels lie for many
    levels; Lloyd then only polishes. Starting from plain quantiles instead leaves the tails
    starved and Lloyd needs thousands of steps to repair it."""
    bins = len(density)
    cum = torch.cumsum(density.pow(1.0 / 3.0), 0)
    targets = (torch.arange(k, dtype=torch.float64, device=density.device) + 0.5) / k * cum[-1]
    chosen = torch.searchsorted(cum, targets).clamp_(max=bins - 1)
    return torch.unique(lo + (chosen.to(torch.float64) + 0.5) * width)


def nearest_index(values: torch.Tensor, sorted_codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest entry of an ascending codebook for each value (ties to the lower)."""
    bounds = (sorted_codebook[:-1] + sorted_codebook[1:]) / 2
    return torch.bucketize(values, bounds, right=False)


def nearest_in_sorted(srt: torch.Tensor, perm: torch.Tensor, sorted_codebook: torch.Tensor) -> torch.Tensor:
    """`nearest_index` of the values that `perm` sorts into `srt` (values[perm] == srt), in the
    values' order, from the sort the fit made anyway: each of the k - 1 boundaries is found once
    in `srt` and the labels are a running count of the boundaries passed, where `nearest_index`
    searches every value among the boundaries (a CPU spends 0.06 s on 1.6M values). Compared in
    float32 as `nearest_index` compares (the cast keeps the sorted order), so the labels are the
    same; no value is read back, so a GPU never waits."""
    bounds = (sorted_codebook[:-1] + sorted_codebook[1:]) / 2
    passed = torch.searchsorted(srt.to(torch.float32), bounds, right=True)   # values <= each bound
    in_order = torch.cumsum(count_labels(passed, len(srt) + 1)[:-1], 0)   # bounds below each sorted value
    return torch.empty_like(in_order).scatter_(0, perm, in_order)
