"""One chunk group of a streamed SOG, start to end: its levels, bounds and one SOG per level.

A group is a run of neighbouring leaves of the chunk tree (at most `chunk_count` splats at
level 0). Level 0 is the group's own splats; level k merges level k-1 in pairs inside each
leaf (`decimate`), so every leaf has every level and a coarse splat never leaves its chunk.
Each level is written as one unbundled SOG v2 (`{level}_{group}/meta.json`) whose splats are
the leaves' runs one after another, each run ordered on its own (lod-meta.json addresses a
leaf's run by offset and count). Only this group's splats are ever held: the memory bound of
the whole streamed write.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from sogs_core.order.curves import run_ids
from sogs_core.formats.sog.package import SogPackage
from sogs_core.model.splats import ATTRIBUTES, Splats
from sogs_core.model.rotations import rotation_entries
from sogs_core.edit.decimate import decimate

#: (folder name such as "1_7", package) -> bytes written
FolderWriter = Callable[[str, SogPackage], int]


@dataclass
class FileResult:
    """One SOG file of the streamed output: its level, folder name, the leaves whose runs it
    holds (in order) with each run's splat count, the bytes written, per-stage seconds, fidelity."""

    level: int
    name: str
    leaves: list[int]
    counts: list[int]
    bytes: int
    seconds: dict = field(default_factory=dict)
    fidelity: dict = field(default_factory=dict)


@dataclass
class GroupResult:
    """What one group produced: its level-0 file, its leaves' bounds (over every level), and
    its coarser levels' splats (level 1 first), left for the buckets that pack them."""

    group: int
    leaves: list[int]
    bounds: list[list[list[float]]]         # [leaf in group] -> [min xyz, max xyz]
    file: FileResult
    coarse: list[tuple[Splats, list[int]]] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    worker: str = ""                        # who compressed it (set by the Ray actor)


#: merges of a level that may stay undone (`decimate`'s slack): a level is "about half" the one
#: before, and the pass that would do the last few hundred merges costs as much as any other
LEVEL_SLACK = 0.01


def folder_name(level: int, group: int) -> str:
    return f"{level}_{group}"


def splats_tensors(s: Splats, device: torch.device) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(getattr(s, k))).to(device) for k in ATTRIBUTES}


def parts_tensors(parts: list[Splats], device: torch.device) -> dict[str, torch.Tensor]:
    """`splats_tensors` of the parts one after another, each part copied into its rows of the
    device's tensors: the splats never joined on the host first (a copy of them all there)."""
    total = sum(p.count for p in parts)
    out = {}
    for k in ATTRIBUTES:
        first = getattr(parts[0], k)
        dst = torch.empty((total,) + first.shape[1:], dtype=torch.from_numpy(first[:0]).dtype, device=device)
        start = 0
        for p in parts:
            rows = getattr(p, k)
            dst[start:start + len(rows)].copy_(torch.from_numpy(np.ascontiguousarray(rows)))
            start += len(rows)
        out[k] = dst
    return out


def tensors_splats(t: dict[str, torch.Tensor]) -> Splats:
    return Splats(*(t[k].cpu().numpy() for k in ATTRIBUTES))


@dataclass
class GroupLevels:
    """A chunk group's levels (splats of level k grouped by leaf, count per leaf; level 0 first)
    and, per leaf, the box around every level's 1-sigma ellipsoids (min xyz, max xyz)."""

    levels: list[tuple[Splats, list[int]]]
    bounds: list[list[list[float]]]


def _box_extent(t: dict[str, torch.Tensor], seg: torch.Tensor, n_leaves: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per leaf, the min and max corner of its splats' 1-sigma boxes (float64, where t lies):
    each box's half-size is |R| times the scales, as the viewer culls by. Entry by entry, not
    as (N, 3, 3) matrices times (N, 3, 1): the same float64 sums, without a CPU's slow batched
    matmul of tiny matrices."""
    s0, s1, s2 = torch.exp(t["log_scales"].double()).unbind(1)
    half = torch.stack([(r0.abs() * s0 + r1.abs() * s1) + r2.abs() * s2
                        for r0, r1, r2 in rotation_entries(t["quats"].double())], 1)
    means = t["means"].double()
    index = seg[:, None].expand(-1, 3)
    lo = torch.full((n_leaves, 3), float("inf"), dtype=torch.float64, device=means.device)
    hi = torch.full((n_leaves, 3), -float("inf"), dtype=torch.float64, device=means.device)
    return lo.scatter_reduce_(0, index, means - half, "amin"), hi.scatter_reduce_(0, index, means + half, "amax")


def _bounds_list(lo: torch.Tensor, hi: torch.Tensor) -> list[list[list[float]]]:
    return [[a, b] for a, b in zip(lo.tolist(), hi.tolist())]


def build_levels(splats: Splats, leaf_sizes: list[int], levels: int, device: torch.device,
                 leaf_group: Optional[list[int]] = None) -> GroupLevels:
    """Levels 0 .. levels-1 of a group and its leaves' bounds, made where the splats are on
    `device` (the bounds there too: on a CPU thread they cost more than the merge's launches).
    `leaf_group`: per leaf, the chunk group it belongs to, when several groups' leaves come
    together (`build_levels_batch`: each group keeps its own length unit)."""
    made, bounds = _coarser_levels(splats_tensors(splats, device), leaf_sizes, levels, device, leaf_group)
    return GroupLevels([(splats, list(leaf_sizes))] + made, bounds)


def _coarser_levels(t: dict[str, torch.Tensor], leaf_sizes: list[int], levels: int, device: torch.device,
                    leaf_group: Optional[list[int]] = None) -> tuple[list[tuple[Splats, list[int]]], list]:
    """Levels 1 .. levels-1 of level 0's tensors `t` (on `device`), each back on the host with
    its count per leaf, and the leaves' bounds over every level (`build_levels`)."""
    seg = run_ids(leaf_sizes, device)
    groups = None if leaf_group is None else torch.tensor(leaf_group, device=device)
    out = []
    lo, hi = _box_extent(t, seg, len(leaf_sizes))
    for _ in range(1, levels):
        t, seg = decimate(t, seg, slack=LEVEL_SLACK, segment_group=groups)
        counts = torch.bincount(seg, minlength=len(leaf_sizes)).tolist()
        out.append((tensors_splats(t), counts))
        more_lo, more_hi = _box_extent(t, seg, len(leaf_sizes))
        lo, hi = torch.minimum(lo, more_lo), torch.maximum(hi, more_hi)
    return out, _bounds_list(lo, hi)


def build_levels_batch(parts: list[tuple[Splats, list[int]]], levels: int,
                       device: torch.device) -> list[GroupLevels]:
    """`build_levels` of several chunk groups (each: its splats grouped by leaf, count per
    leaf) in one call, split back per group. Why: one group's decimation is a few thousand
    small launches that leave a GPU mostly idle; eight groups in one call cost 0.18 s a group
    on an H100 against 0.49 s one at a time (bench/NOTES.md, session 24). Every merge stays
    inside its leaf, and each group keeps its own units, walks and stop (`decimate`'s
    `segment_group`), so a group's levels are exactly those it gets alone."""
    if len(parts) == 1:
        return [build_levels(parts[0][0], parts[0][1], levels, device)]
    sizes = [c for _, leaf_sizes in parts for c in leaf_sizes]
    leaf_group = [g for g, (_, leaf_sizes) in enumerate(parts) for _ in leaf_sizes]
    made, bounds = _coarser_levels(parts_tensors([p[0] for p in parts], device), sizes, levels, device, leaf_group)
    together = GroupLevels([(None, sizes)] + made, bounds)       # level 0: each group's own splats
    leaf_end = np.cumsum([len(leaf_sizes) for _, leaf_sizes in parts]).tolist()
    leaves = [range(end - len(p[1]), end) for p, end in zip(parts, leaf_end)]       # each group's leaves
    out = [GroupLevels([], together.bounds[own.start:own.stop]) for own in leaves]
    for k, (level_splats, counts) in enumerate(together.levels):
        start = 0
        for g, ((own_splats, _), own) in enumerate(zip(parts, leaves)):
            own_counts = counts[own.start:own.stop]
            stop = start + sum(own_counts)
            rows = own_splats if k == 0 else Splats(*(getattr(level_splats, a)[start:stop] for a in ATTRIBUTES))
            out[g].levels.append((rows, list(own_counts)))
            start = stop
    return out


def leaf_bounds(level_splats: list[tuple[Splats, list[int]]], n_leaves: int) -> list[list[list[float]]]:
    """Per leaf, the box around every level's 1-sigma ellipsoids (as the viewer culls by), for
    levels given as inputs (`build_levels` makes the merged levels' bounds as it goes): the
    same `_box_extent`, level by level on this CPU."""
    cpu = torch.device("cpu")
    lo = torch.full((n_leaves, 3), float("inf"), dtype=torch.float64)
    hi = torch.full((n_leaves, 3), -float("inf"), dtype=torch.float64)
    for s, counts in level_splats:
        more_lo, more_hi = _box_extent(splats_tensors(s, cpu), run_ids(counts, cpu), n_leaves)
        lo, hi = torch.minimum(lo, more_lo), torch.maximum(hi, more_hi)
    return _bounds_list(lo, hi)


def worst(a: dict, b: dict) -> dict:
    """Per fidelity key the worse of two reports (max; counts summed)."""
    out = dict(a)
    for k, v in b.items():
        if not isinstance(v, (int, float)):
            continue
        if k.startswith("count_") or k == "unmatched":
            out[k] = out.get(k, 0) + v
        else:
            out[k] = max(out.get(k, v), v)
    return out


def encode_file(compressor, level: int, name: str, leaves: list[int], splats: Splats, counts: list[int],
                write: FolderWriter, sog_input: bool = False) -> FileResult:
    """One SOG file: the leaves' runs one after another, each ordered on its own; its counts
    are the splats written per leaf (below --quality 100 those at opacity 0 are left out).
    `sog_input`: the splats are a decoded SOG's (`Compressor.encode`)."""
    seconds: dict = {}
    pkg, fid, written_counts = compressor.encode_runs(splats, counts, seconds, sog_input=sog_input)
    t0 = time.perf_counter()
    written = write(name, pkg)
    seconds["write"] = time.perf_counter() - t0
    return FileResult(level, name, list(leaves), list(written_counts), written, seconds, fid)


def compress_group(compressor, group: int, leaves: list[int], splats: Splats, leaf_sizes: list[int],
                   levels: int, write: FolderWriter,
                   given: Optional[list[tuple[Splats, list[int]]]] = None, sog_input: bool = False,
                   made: Optional[GroupLevels] = None) -> GroupResult:
    """Build the group's levels (or take the `given` ones, or those already `made` by
    `build_levels_batch`), write level 0 as `0_{group}`, and hand the coarser levels back for
    their buckets. `sog_input`: level 0 is a decoded SOG's splats (merged levels never are)."""
    decimate = 0.0                            # given levels, or made by the caller (who times them)
    if given is not None:
        made = GroupLevels(given, leaf_bounds(given, len(leaf_sizes)))
    elif made is None:
        with compressor.gpu_lock(), torch.no_grad():
            t0 = time.perf_counter()          # the decimation itself, not the wait for the lock
            made = build_levels(splats, leaf_sizes, levels, compressor.device)
            decimate = time.perf_counter() - t0
    seconds = {"decimate": decimate}
    base, counts = made.levels[0]
    file = encode_file(compressor, 0, folder_name(0, group), leaves, base, counts, write, sog_input)
    return GroupResult(group, list(leaves), made.bounds, file, list(made.levels[1:]), seconds)


def bucket_of(group: int, level: int) -> int:
    """Level k packs the coarse runs of 2^k consecutive groups into one file (each level's files
    then hold about as many splats as a level-0 group: fewer, fuller files, as the viewer wants)."""
    return group >> level


def bucket_groups(level: int, bucket: int, n_groups: int) -> range:
    return range(bucket << level, min(n_groups, (bucket + 1) << level))


def compress_bucket(compressor, level: int, bucket: int,
                    parts: list[tuple[list[int], Splats, list[int]]], write: FolderWriter) -> FileResult:
    """Level `level`'s runs of the bucket's groups (parts in group order: leaves, splats, counts
    per leaf) as one SOG file `{level}_{bucket}`."""
    leaves = [leaf for p in parts for leaf in p[0]]
    counts = [c for p in parts for c in p[2]]
    splats = Splats.concat([p[1] for p in parts])
    return encode_file(compressor, level, folder_name(level, bucket), leaves, splats, counts, write)
