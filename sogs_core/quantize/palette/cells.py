"""A two-level nearest-centroid search for the SH palette (an inverted file), CPU and GPU.

Why: splat-transform's palette has up to 65536 entries, almost one per splat in small scenes
(16384 for 20,000 splats), and the brute-force search costs N x P x D per Lloyd step: on a CPU
most of a small SH scene's time. Here the centroids are grouped into C ~ sqrt(P) coarse cells
(a short k-means over the centroids); each splat goes to its nearest cell, and the splats of a
cell search only the centroids of the `probe` cells nearest to that cell: about probe / C of
the work, as dense matmuls per cell. The cells follow the centroids for the first Lloyd steps
only (`CELL_REBUILDS`); later steps regroup the centroids among the cells they have.

Approximate: a splat whose nearest centroid lies outside its cell's probed neighbourhood gets
the nearest one inside it. The default probe of 16 cells costs little inertia against the exact
search, in a fraction of its time (bench/NOTES.md); `tests/test_quantize.py` holds it within
0.5 %. Distances are exact for the labels returned. On a GPU the same search is one Triton
kernel (`triton_search.nearest_cells`), faster than the fused brute force for a little more
inertia (bench/NOTES.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch

from sogs_core.model.counting import count_labels
from sogs_core.quantize.palette.exact import assign


#: searches whose coarse cells are made anew over the centroids (the seeds' and the first two
#: Lloyd steps', when the centroids move most); later searches keep the last cells and only
#: regroup the centroids among them. Why: making the cells and grouping the rows by them is
#: ~3/4 of a fit's launches on a GPU, where a streamed SOG's palette fits are bound by
#: launching; the inertia moved -1.6 to +1.2 % on the shared SH scenes (bench/NOTES.md).
CELL_REBUILDS = 3


def cell_count(p: int) -> int:
    """Coarse cells for p centroids: ~sqrt(p), so a cell holds about as many as there are cells."""
    return max(1, int(round(math.sqrt(p))))


def coarse_cells(centroids: torch.Tensor, cells: int, iterations: int = 4) -> torch.Tensor:
    """Centres of `cells` coarse cells over the centroids: Lloyd from an even stride of them."""
    centres = centroids[torch.linspace(0, len(centroids) - 1, cells, device=centroids.device).long()].clone()
    for _ in range(iterations):
        lab, _ = assign(centroids, centres)
        sums = torch.zeros_like(centres).index_add_(0, lab, centroids)
        counts = count_labels(lab, cells, centroids.dtype)
        centres = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centres)
    return centres


@dataclass
class RowCells:
    """The rows' side of the search, fixed for a whole fit: coarse cells' centres, the rows
    grouped by their nearest cell, each cell's `probe` nearest cells, and the row blocks the
    fused kernel walks (per block size, made once)."""

    centres: torch.Tensor         # (C, D) the coarse cells' centres
    row_order: torch.Tensor       # (N,) row ids sorted by cell
    row_start: torch.Tensor       # (C + 1,) int64: cell j's rows are row_order[start[j]:start[j+1]]
    near: torch.Tensor            # (C, probe) int32: each cell's nearest cells, itself first
    blocks: dict[int, "RowBlocks"] = field(default_factory=dict)

    @classmethod
    def build(cls, x: torch.Tensor, centroids: torch.Tensor, probe: int) -> Optional["RowCells"]:
        """Cells over these centroids for rows x; None where too few centroids to pay off."""
        p = len(centroids)
        cells = cell_count(p)
        if cells * 4 >= p or probe >= cells:
            return None
        centres = coarse_cells(centroids, cells)
        row_cell, _ = assign(x, centres)
        row_order, row_start = _grouped(row_cell, cells)
        near = assign_topk(centres, centres, probe).to(torch.int32)
        return cls(centres, row_order, row_start, near)

    def row_blocks(self, block: int) -> "RowBlocks":
        """Rows in blocks of `block` that never straddle two cells (row id -1 pads a block).
        The block count is the bound ceil(N / block) + cells, known without reading anything
        back from the device; blocks past the last cell's are all padding (cell -1)."""
        if block in self.blocks:
            return self.blocks[block]
        dev = self.row_order.device
        n, cells = len(self.row_order), len(self.row_start) - 1
        counts = self.row_start[1:] - self.row_start[:-1]
        per_cell = (counts + block - 1) // block
        block_end = torch.cumsum(per_cell, 0)
        first_block = block_end - per_cell
        n_blocks = (n + block - 1) // block + cells
        block_cell = torch.searchsorted(block_end, torch.arange(n_blocks, device=dev), right=True)
        block_cell = torch.where(block_cell < cells, block_cell, -1)
        pos = torch.arange(n, device=dev)
        cell_of_row = torch.searchsorted(self.row_start[1:], pos, right=True)
        slots = first_block[cell_of_row] * block + pos - self.row_start[cell_of_row]
        rows = torch.full((n_blocks * block,), -1, dtype=torch.int32, device=dev)
        rows[slots] = self.row_order.to(torch.int32)
        self.blocks[block] = RowBlocks(rows, block_cell.to(torch.int32))
        return self.blocks[block]


def _grouped(cell: torch.Tensor, cells: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids sorted by cell (stable) and each cell's start in that order ((cells + 1,) int64)."""
    counts = count_labels(cell, cells)
    start = torch.zeros(cells + 1, dtype=torch.long, device=cell.device)
    start[1:] = torch.cumsum(counts, 0)
    return torch.argsort(cell, stable=True), start


@dataclass
class CellLayout:
    """One search's layout: the centroids grouped by the fixed cells of `rows`."""

    rows: RowCells
    cent_order: torch.Tensor      # (P,) centroid ids sorted by cell
    cent_start: torch.Tensor      # (C + 1,) int32: cell j's centroids are cent_order[start[j]:start[j+1]]

    @classmethod
    def build(cls, x: torch.Tensor, centroids: torch.Tensor, probe: int,
              rows: Optional[RowCells] = None) -> Optional["CellLayout"]:
        """The layout for these centroids; `rows`: cells already made for x (else made over
        these centroids). None where too few centroids to pay off."""
        rows = rows or RowCells.build(x, centroids, probe)
        if rows is None:
            return None
        cent_cell, _ = assign(centroids, rows.centres)
        cent_order, cent_start = _grouped(cent_cell, len(rows.centres))
        return cls(rows, cent_order, cent_start.to(torch.int32))

    @property
    def row_order(self) -> torch.Tensor:
        return self.rows.row_order

    @property
    def row_start(self) -> torch.Tensor:
        return self.rows.row_start

    @property
    def near(self) -> torch.Tensor:
        return self.rows.near

    def candidates(self, cell: int) -> torch.Tensor:
        """Centroid ids a row of `cell` searches."""
        bounds = self.cent_start.tolist()
        return torch.cat([self.cent_order[bounds[j]:bounds[j + 1]] for j in self.near[cell].tolist()])

    def row_blocks(self, block: int) -> "RowBlocks":
        return self.rows.row_blocks(block)


@dataclass
class RowBlocks:
    rows: torch.Tensor            # (blocks * block,) int32 row ids, -1 for padding
    block_cell: torch.Tensor      # (blocks,) int32 cell of each block, -1 for a block of padding only


class CellSearch:
    """Nearest centroid of fixed rows x (N, D) for a fit's successive centroids, through coarse
    cells (made anew for the first `CELL_REBUILDS` calls, then kept); on a CUDA device with
    Triton one fused kernel over row blocks (`triton_search.nearest_cells`), elsewhere a dense
    matmul per cell."""

    def __init__(self, x: torch.Tensor, probe: int = 16) -> None:
        self.x = x.float()
        self.probe = probe
        self._rows: Optional[RowCells] = None
        self._calls = 0
        # the fused kernel's centred, padded rows, held as plain attributes: a closure over self
        # here made a reference cycle that kept each fit's rows on the device until the
        # collector ran (gigabytes over a streamed SOG's files; bench/NOTES.md, session 33)
        self._kernel = None
        if self.x.is_cuda:
            try:
                from sogs_core.quantize.palette import triton_search as pt
            except ImportError:
                pass
            else:
                self._kernel = pt
                self._mean = self.x.mean(0)
                self._padded = pt.pad_rows(self.x - self._mean, pt.padded_width(self.x.shape[1]))

    def __call__(self, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x
        if self._calls < CELL_REBUILDS or not self._fits(centroids):   # cells follow the centroids
            self._rows = RowCells.build(x, centroids, self.probe)
        self._calls += 1
        layout = CellLayout.build(x, centroids, self.probe, self._rows)
        if layout is None:
            return assign(x, centroids)                       # too few centroids to pay off
        if self._kernel is not None:
            return self._kernel.nearest_cells(self._padded, x, centroids.float(), self._mean, layout)
        return self.per_cell(centroids, layout)

    def _fits(self, centroids: torch.Tensor) -> bool:
        """Whether the kept cells were made for this many centroids."""
        return self._rows is not None and len(self._rows.centres) == cell_count(len(centroids))

    def per_cell(self, centroids: torch.Tensor, layout: CellLayout) -> tuple[torch.Tensor, torch.Tensor]:
        """The search as one dense matmul per coarse cell (the CPU path; the fused kernel's check)."""
        x = self.x
        labels = torch.empty(len(x), dtype=torch.long, device=x.device)
        dists = torch.empty(len(x), dtype=torch.float32, device=x.device)
        bounds = layout.row_start.tolist()
        for c in range(len(bounds) - 1):
            if bounds[c + 1] == bounds[c]:
                continue
            rows = layout.row_order[bounds[c]:bounds[c + 1]]
            cand = layout.candidates(c)
            lab, dist = assign(x[rows], centroids[cand])
            labels[rows] = cand[lab]
            dists[rows] = dist
        return labels, dists


def assign_topk(x: torch.Tensor, centroids: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (N, k) of the k nearest centroids of each row (nearest first)."""
    d = (centroids * centroids).sum(1)[None, :] - 2.0 * x @ centroids.T
    return torch.topk(d, k, dim=1, largest=False).indices
