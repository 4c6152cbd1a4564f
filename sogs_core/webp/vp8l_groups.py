"""Entropy groups of VP8L: which prefix codes each tile of the image uses.

The image is cut into square tiles; the tiles are clustered so that each cluster gets its own
five prefix codes, written once, and the entropy image says which tile uses which. The
clustering is a k-means whose distance is the bits a tile costs under a cluster's code, and
every grouping it passes through is priced by estimated bits (data, code descriptions, entropy
image); the cheapest wins.

Why the shape of this code: the tensors are small (a few thousand tiles by 2,112 symbols), so
on a GPU the time is kernel launches and host syncs, not arithmetic. The five trees are priced
in one pass over all their symbols (a tree index per symbol, not a loop over trees), and every
candidate's cost stays on the device until one argmin at the end (this step is a large part of
an image's encode time; bench/NOTES.md).
"""
from __future__ import annotations

from typing import Optional

import torch

from sogs_core.webp.vp8l_tokens import Alphabets

#: new groups split_rare may add after the k-means, and the share of a tree's symbols above
#: which the rest count as rare
SPLITS = 2
RARE_SHARE = 0.99
#: rough bits of one group's five code descriptions: per used symbol, and fixed per group
HEADER_BITS_PER_SYMBOL = 4.0
HEADER_BITS_PER_GROUP = 5 * 40.0

_tree_cache: dict[tuple[int, torch.device], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def _trees(ab: Alphabets, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total,) tree of each symbol, (total, 5) its one-hot, (5,) the trees' alphabet sizes."""
    key = (ab.cache_bits, device)
    if key not in _tree_cache:
        sizes = torch.tensor(ab.sizes, device=device)
        tree = torch.repeat_interleave(torch.arange(len(ab.sizes), device=device), sizes)
        onehot = torch.nn.functional.one_hot(tree, len(ab.sizes)).float()
        _tree_cache[key] = (tree, onehot, sizes.float())
    return _tree_cache[key]


def bits_tables(h: torch.Tensor, ab: Alphabets) -> torch.Tensor:
    """-log2 frequency of each symbol within its tree, for each row of `h` (G, alphabets.total):
    a tree with one used symbol costs 0, a prefix code spends at least 1 bit otherwise, and
    unused symbols get a large but finite cost."""
    tree, onehot, sizes = _trees(ab, h.device)
    used = h > 0
    per_tree = h @ onehot                                              # (G, 5) symbols per tree
    single = ((used.float() @ onehot) <= 1)[:, tree]
    t = (-torch.log2((h + 0.01) / (per_tree + 0.01 * sizes)[:, tree])).clamp(min=1.0)
    return torch.where(single & used, torch.zeros_like(t), t)


def _centers(tile_hist: torch.Tensor, assign: torch.Tensor, groups: int) -> torch.Tensor:
    """(groups, total) symbol counts of each group's tiles."""
    return torch.zeros(groups, tile_hist.shape[1], dtype=tile_hist.dtype, device=tile_hist.device).index_add_(
        0, assign, tile_hist)


def grouping_bits(tiles: int, centers: torch.Tensor, ab: Alphabets) -> torch.Tensor:
    """Estimated bits (a 0-d tensor, left on the device) of the data, the code descriptions and
    the entropy image of `tiles` tiles grouped so that the groups hold `centers` (each group's
    summed tile histograms, `_centers`); empty groups cost nothing. The data's bits are summed
    per group, not per tile: the same sum without a (tiles, symbols) table, which took 0.5 GB of
    a streamed file's image on a GPU (bench/NOTES.md, session 33)."""
    return _groupings_bits(tiles, centers, ab, [len(centers)])[0]


def _groupings_bits(tiles: int, centers: torch.Tensor, ab: Alphabets, sizes: list[int],
                    bits: Optional[torch.Tensor] = None, owner: Optional[torch.Tensor] = None) -> torch.Tensor:
    """`grouping_bits` of several groupings at once, their groups' rows one after another in
    `centers` (`sizes`: groups per grouping): (len(sizes),) estimates. Each one equals what
    `grouping_bits` gives it alone, float for float: the per-group terms are whole numbers
    (exact in any order) and each grouping's data bits are summed over its own rows. `owner`:
    each row's grouping (`_owners(sizes)`), where the caller has it."""
    bits = bits_tables(centers, ab) if bits is None else bits
    weighted = centers * bits
    starts = [sum(sizes[:k]) for k in range(len(sizes))]
    data = torch.stack([weighted[s:s + g].sum() for s, g in zip(starts, sizes)])
    nonempty = centers.sum(1) > 0
    per_group = ((centers > 0).sum(1) * HEADER_BITS_PER_SYMBOL + HEADER_BITS_PER_GROUP) * nonempty
    if len(sizes) == 1:
        header, groups = per_group.sum()[None], nonempty.sum().float()[None]
    else:
        owner = _owners(sizes, centers.device) if owner is None else owner
        header = torch.zeros(len(sizes), dtype=per_group.dtype, device=centers.device).index_add_(0, owner, per_group)
        groups = torch.zeros(len(sizes), dtype=torch.float32, device=centers.device).index_add_(
            0, owner, nonempty.float())
    entropy_image = torch.where(groups > 1, tiles * torch.log2(groups).clamp(min=1.0), torch.zeros_like(groups))
    return data + header + entropy_image


def _owners(sizes: list[int], device: torch.device) -> torch.Tensor:
    """The grouping each row of stacked centres belongs to (`_groupings_bits`)."""
    return torch.tensor([k for k, g in enumerate(sizes) for _ in range(g)], device=device)


def renumber(assign: torch.Tensor) -> torch.Tensor:
    """The groups of `assign` renumbered 0..G-1 in order, empty ones dropped."""
    return torch.searchsorted(torch.unique(assign), assign)


def split_rare(tile_hist: torch.Tensor, assign: torch.Tensor, cost: float, ab: Alphabets,
               max_splits: int) -> tuple[torch.Tensor, float]:
    """Where one symbol makes up >= RARE_SHARE of a group's tree, the tiles holding the other
    symbols of that tree move to a new group, kept when the estimate drops (the best such move,
    up to `max_splits` times). Why: a prefix code spends at least one bit on every symbol of a
    tree with two symbols, so a few rare symbols (the alpha residuals where an image's padding
    starts) cost every texel of their group a bit; the k-means, which prices a tile under a
    group's code, does not see that (bench/NOTES.md). Every candidate move is priced at once:
    its groups are the current ones less the moved tiles' counts plus a group of them (whole
    numbers, so the same sums as counting its tiles again), and the first cheapest wins, as
    trying them one by one would choose."""
    sizes, offsets = ab.sizes, ab.offsets
    ntiles = len(tile_hist)
    offs = torch.tensor(offsets, device=tile_hist.device)
    tree_sums = torch.stack([tile_hist[:, o:o + a].sum(1) for a, o in zip(sizes, offsets)], 1)       # (T, 5)
    for _ in range(max_splits):
        ngroups = int(assign.max()) + 1
        centers = _centers(tile_hist, assign, ngroups)
        trees = [centers[:, o:o + a] for a, o in zip(sizes, offsets)]
        per_tree = torch.stack([t.max(1).values / t.sum(1).clamp(min=1) for t in trees], 1)     # (G, 5) top share
        mixed = torch.stack([(t > 0).sum(1) > 1 for t in trees], 1)
        candidates = torch.nonzero((per_tree >= RARE_SHARE) & mixed)                             # (C, 2): group, tree
        if len(candidates) == 0:
            break
        group, tree = candidates[:, 0], candidates[:, 1]
        top = torch.stack([t.argmax(1) for t in trees], 1)[group, tree] + offs[tree]            # (C,) symbol column
        others = tree_sums[:, tree].T - tile_hist[:, top].T                                     # (C, T)
        moved = (assign[None, :] == group[:, None]) & (others > 0)
        moved_counts = moved.float() @ tile_hist                                                # (C, total)
        trial = centers.expand(len(candidates), -1, -1).clone()
        trial[torch.arange(len(candidates), device=trial.device), group] -= moved_counts
        trial = torch.cat([trial, moved_counts[:, None]], 1)                                   # (C, G + 1, total)
        costs = _groupings_bits(ntiles, trial.reshape(-1, trial.shape[2]), ab, [ngroups + 1] * len(candidates))
        pick = int(costs.argmin())
        best = float(costs[pick])
        if not best < cost:
            break
        cost, assign = best, renumber(torch.where(moved[pick], ngroups, assign))
    return assign, cost


def cluster_tiles(tile_hist: torch.Tensor, ab: Alphabets, max_groups: int,
                  rounds: int = 6) -> tuple[torch.Tensor, float]:
    """Group of each tile (T,) with the lowest estimated bits among one group and k-means
    clusterings into 2, 4 ... max_groups groups, then split_rare; returns it and its estimate.
    The k-means distance is the bits a tile costs under a cluster's code; seeds are spread
    along the tiles' own bits per symbol. Every iteration's grouping is a candidate (k-means
    under prefix-code costs is not monotone: a rare symbol joining a cluster costs all its
    tiles), and every iteration runs: a converged k-means repeats its grouping, which costs
    less than the host sync that would notice it. The k-means of every size run side by side,
    their centres stacked, so that a round is one set of launches for them all (this step was
    most of our encoder's launches); each size's distances and data bits are still its own, so
    the groupings and estimates are those of one size at a time."""
    ntiles = tile_hist.shape[0]
    dev = tile_hist.device
    one = torch.zeros(ntiles, dtype=torch.int64, device=dev)
    assigns = [one]
    costs = [grouping_bits(ntiles, _centers(tile_hist, one, 1), ab)]
    sizes = []
    g = 2
    while g <= min(max_groups, ntiles):
        sizes.append(g)
        g *= 2
    if sizes:
        own = (tile_hist * bits_tables(tile_hist, ab)).sum(1) / tile_hist.sum(1).clamp(min=1)   # bits per symbol
        rank = torch.argsort(own)
        starts = [sum(sizes[:k]) for k in range(len(sizes))]
        centers = torch.cat([tile_hist[rank[torch.linspace(0, ntiles - 1, g, device=dev).long()]] for g in sizes])
        bits = bits_tables(centers, ab)
        owner = _owners(sizes, dev)
        per_round, round_assigns = [], []
        for _ in range(rounds):
            round_assigns.append([(tile_hist @ bits[s:s + g].T).argmin(1) for s, g in zip(starts, sizes)])
            centers = torch.zeros_like(centers)
            for s, g, assign in zip(starts, sizes, round_assigns[-1]):
                centers[s:s + g].index_add_(0, assign, tile_hist)
            bits = bits_tables(centers, ab)              # this round's estimate, the next one's distances
            per_round.append(_groupings_bits(ntiles, centers, ab, sizes, bits, owner))
        # candidates in the order one size at a time would make them: size by size, round by round
        costs += list(torch.stack(per_round).T.reshape(-1).unbind())
        assigns += [round_assigns[r][k] for k in range(len(sizes)) for r in range(rounds)]
    costs_t = torch.stack(costs)
    pick = int(costs_t.argmin())
    return split_rare(tile_hist, renumber(assigns[pick]), float(costs_t[pick]), ab, SPLITS)
