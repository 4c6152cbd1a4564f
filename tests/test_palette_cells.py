"""The SH palette's two-level search (`quantize.palette.cells`): the row blocks the fused GPU
kernel walks. The kernel itself is checked on a GPU only (bench/gpu_check.py, against the exact
search): Triton's interpreter cannot run its loops over bounds read from memory."""
from __future__ import annotations

import pytest
import torch

from sogs_core.model.counting import count_labels
from sogs_core.quantize.palette.cells import CellLayout



def _clustered(n: int, d: int, seed: int) -> torch.Tensor:
    """Rows in a few tight clusters of very different sizes, so cells fill unevenly (some empty)."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(12, d, generator=gen) * 4.0
    sizes = torch.tensor([0.4, 0.2, 0.1, 0.1, 0.05, 0.05, 0.04, 0.03, 0.01, 0.01, 0.005, 0.005])
    which = torch.multinomial(sizes, n, replacement=True, generator=gen)
    return centres[which] + 0.3 * torch.randn(n, d, generator=gen)


def test_count_labels_equals_bincount():
    labels = torch.tensor([3, 0, 3, 3, 1, 7])
    assert count_labels(labels, 9).tolist() == torch.bincount(labels, minlength=9).tolist()
    assert count_labels(labels, 9, torch.float32).dtype == torch.float32


@pytest.mark.parametrize("block", [16, 64])
def test_row_blocks_hold_every_row_once_and_never_straddle_two_cells(block):
    x = _clustered(3000, 8, seed=1)
    cents = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(2))[:1024]]
    layout = CellLayout.build(x, cents, probe=8)
    rb = layout.row_blocks(block)
    cells = len(layout.row_start) - 1
    assert len(rb.block_cell) == (len(x) + block - 1) // block + cells      # the bound, known on the host
    rows = rb.rows.view(-1, block)
    real = rows[rows >= 0]
    assert sorted(real.tolist()) == list(range(len(x)))
    counts = (layout.row_start[1:] - layout.row_start[:-1]).tolist()
    cell_of = torch.empty(len(x), dtype=torch.long)
    cell_of[layout.row_order] = torch.repeat_interleave(torch.arange(cells), torch.tensor(counts))
    for b, cell in enumerate(rb.block_cell.tolist()):
        members = rows[b][rows[b] >= 0]
        if cell < 0:
            assert len(members) == 0                 # blocks past the last cell's are padding only
        else:
            assert (cell_of[members.long()] == cell).all()


def test_cells_follow_the_centroids_for_the_first_searches_then_stay():
    """`CellSearch` makes its coarse cells anew for the first CELL_REBUILDS searches of a fit and
    keeps them afterwards (only the centroids are regrouped); a search with another number of
    centroids gets cells of its own. Labels come from the cells kept, with exact distances."""
    from sogs_core.quantize.palette.cells import CELL_REBUILDS, CellSearch
    from sogs_core.quantize.palette.exact import assign

    x = _clustered(3000, 8, seed=3)
    gen = torch.Generator().manual_seed(4)
    search = CellSearch(x, probe=8)
    made = []
    for _ in range(CELL_REBUILDS + 2):
        cents = x[torch.randperm(len(x), generator=gen)[:1024]] + 0.01
        labels, dists = search(cents)
        made.append(search._rows)
        assert torch.allclose(dists, ((x - cents[labels]) ** 2).sum(1), rtol=1e-3, atol=1e-3)   # |x|, |c| ~ 10
        kept = CellLayout.build(x, cents, probe=8, rows=search._rows)
        want_l, want_d = search.per_cell(cents, kept)
        assert torch.equal(labels, want_l)
    assert len({id(r) for r in made[:CELL_REBUILDS]}) == CELL_REBUILDS      # made anew each time
    assert all(r is made[CELL_REBUILDS - 1] for r in made[CELL_REBUILDS:])  # then kept
    exact_l, _ = assign(x, cents)
    assert float((labels == exact_l).float().mean()) > 0.9
    search(x[:256])                                                          # another count: new cells
    assert search._rows is not made[-1] and len(search._rows.centres) == 16
