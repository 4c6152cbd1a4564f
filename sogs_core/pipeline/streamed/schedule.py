"""The order in which a streamed SOG's units run, the same here and on a Ray cluster.

A unit is a chunk group (writes level 0, hands back its coarser levels) or a bucket (level k:
the coarse runs of 2^k consecutive groups, packed into one file). Every group is queued first;
once all groups of a bucket are done, `BucketPacker` hands the bucket out and it goes ahead of
the groups left (first come, first served among buckets), so only the coarse splats of
unfinished buckets wait in memory. The files written do not depend on this order: lod-meta.json
is built from the finished files, sorted.

`write_streamed` (this process, two units on a thread pool) and `ray_jobs/streamed.py` (units
spread over Ray actors) both drive a `StreamedSchedule`.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Optional, Union

from sogs_core.pipeline.streamed.chunk import bucket_groups, bucket_of


class BucketPacker:
    """Collects each group's coarse-level payloads until a bucket (level k: 2^k consecutive
    groups) is complete, then hands it out once. A payload is whatever the caller needs to
    build the bucket: in this process the splats themselves, on Ray the objects that hold them."""

    def __init__(self, n_groups: int) -> None:
        self.n_groups = n_groups
        self.waiting: dict[tuple[int, int], dict[int, object]] = {}

    def add(self, group: int, payloads: list) -> list[tuple[int, int, list]]:
        """Record a finished group (payloads[k - 1] is its level-k payload); returns the
        buckets it completed as (level, bucket, payloads in group order)."""
        ready = []
        for level, payload in enumerate(payloads, start=1):
            bucket = bucket_of(group, level)
            self.waiting.setdefault((level, bucket), {})[group] = payload
            ready += self._complete(level, bucket)
        return ready

    def absorb(self, waiting: dict[tuple[int, int], dict[int, object]]) -> list[tuple[int, int, list]]:
        """Merge in the payloads another packer still holds (its `waiting`: buckets whose groups
        it did not all see); returns the buckets that completes, as `add` does."""
        ready = []
        for (level, bucket), payloads in sorted(waiting.items()):
            self.waiting.setdefault((level, bucket), {}).update(payloads)
            ready += self._complete(level, bucket)
        return ready

    def hand_off(self, own: set[int]) -> dict[tuple[int, int], dict[int, object]]:
        """The waiting buckets that need groups outside `own` (the groups this packer will ever
        see) and already hold every payload of `own` they need: taken out of `waiting` and
        returned (as `waiting` holds them), for whoever packs them to absorb now rather than
        once every group here is done."""
        ready = {}
        for (level, bucket), got in list(self.waiting.items()):
            members = set(bucket_groups(level, bucket, self.n_groups))
            if not members <= own and members & own <= got.keys():
                ready[(level, bucket)] = self.waiting.pop((level, bucket))
        return ready

    def _complete(self, level: int, bucket: int) -> list[tuple[int, int, list]]:
        """[(level, bucket, payloads in group order)] once every group of the bucket is in
        (handed out once: it leaves `waiting`), else []."""
        got = self.waiting[(level, bucket)]
        members = bucket_groups(level, bucket, self.n_groups)
        if len(got) < len(members):
            return []
        del self.waiting[(level, bucket)]
        return [(level, bucket, [got[g] for g in members])]


@dataclass
class GroupUnit:
    """Compress one chunk group (`spec`: a `GroupSpec`)."""

    spec: object

    @property
    def name(self) -> str:
        return f"chunk group {self.spec.group}"


@dataclass
class BucketUnit:
    """Pack level `level`'s runs of bucket `bucket`'s groups (`payloads`, in group order)."""

    level: int
    bucket: int
    payloads: list

    @property
    def name(self) -> str:
        return f"level {self.level} bucket {self.bucket}"


Unit = Union[GroupUnit, BucketUnit]


class StreamedSchedule:
    """The unit queue of one streamed scene: buckets ready to pack ahead of the groups left,
    first come, first served among buckets; a unit put back (its worker died) goes to the front
    of its kind."""

    def __init__(self, groups: list, n_groups: Optional[int] = None) -> None:
        """groups: the group specs to run; n_groups: the scene's groups in all (default: these),
        which decides the last bucket of each level when a process runs only some of them."""
        self.n_groups = len(groups) if n_groups is None else n_groups
        self.groups: deque = deque(GroupUnit(spec) for spec in groups)
        self.buckets: deque = deque()
        self.packer = BucketPacker(self.n_groups)
        self.groups_done = 0

    def __bool__(self) -> bool:
        """Whether a unit is waiting to be handed out."""
        return bool(self.groups or self.buckets)

    def next(self) -> Optional[Unit]:
        """The next unit to run (None when none waits)."""
        if self.buckets:
            return self.buckets.popleft()
        if self.groups:
            return self.groups.popleft()
        return None

    def more_groups(self, limit: int, splats_left: int, splats_of) -> list[GroupUnit]:
        """Up to `limit` more group units from the front of the queue, while their splats
        (`splats_of(unit)`) fit in `splats_left`: the groups one decimation call takes."""
        taken = []
        while self.groups and len(taken) < limit and splats_of(self.groups[0]) <= splats_left:
            splats_left -= splats_of(self.groups[0])
            taken.append(self.groups.popleft())
        return taken

    def requeue(self, unit: Unit) -> None:
        """Put a unit that did not finish back at the front (of the buckets, or of the groups)."""
        (self.buckets if isinstance(unit, BucketUnit) else self.groups).appendleft(unit)

    def group_done(self, group: int, payloads: list) -> list[BucketUnit]:
        """Record a finished group (payloads[k - 1]: what its level-k bucket needs from it);
        the buckets it completed are queued, and returned."""
        self.groups_done += 1
        ready = [BucketUnit(level, bucket, parts) for level, bucket, parts in self.packer.add(group, payloads)]
        self.buckets.extend(ready)
        return ready
