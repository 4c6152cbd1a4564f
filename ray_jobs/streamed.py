"""One huge scene as a streamed SOG, its chunk groups spread over every actor of the cluster.

The driver asks one actor for the plan (the chunk tree over the centres: positions only, read
by ranges), then hands the groups out, at most two in flight per actor, so a 50M-splat scene
keeps every GPU busy. A group writes level 0 and returns each coarser level's splats as its own
Ray object; once the 2^k groups of a level-k bucket are done, the bucket goes to whichever actor
is free, which receives exactly those objects and writes one file. A unit whose actor dies goes
back to the queue (up to --max-retries per unit); any other failure fails the scene. lod-meta.json is deleted before the first chunk and
written by the driver only after every group has finished: a crash leaves a visibly unfinished
folder, never an index that points at missing chunks. The scene gets one manifest row: level
count, files, splats per level, bytes, per-stage seconds summed over the groups.
"""
from __future__ import annotations

import json
import time
from collections import deque
from typing import Callable

from sogs_core.pipeline.streamed.chunk import worst
from sogs_core.formats.lod_meta.write import lod_meta, write_lod_meta
from sogs_core.pipeline.streamed.write import BucketPacker, add_seconds
from sogs_core.settings import ChunkOptions

from ray_jobs.actors import utcnow
from ray_jobs.manifest import FIDELITY, STAGES, empty_row
from ray_jobs.scheduler import IN_FLIGHT_PER_ACTOR, is_actor_death, scene_timeout
from ray_jobs.storage import Store

#: bytes a splat takes in a PLY with SH 3 (the group time limit is sized on this)
PLY_BYTES_PER_SPLAT = 248


class StreamedFailure(Exception):
    """A unit (chunk group or bucket) of a streamed scene failed; the scene fails with it."""


class StreamedScene:
    def __init__(self, ray, actors: list, store: Store, lod: dict, memory_budget: int, max_retries: int,
                 timeout_setting: str, log: Callable[[str], None], tick: Callable[[], None] = lambda: None) -> None:
        self.ray, self.actors, self.store = ray, actors, store
        self.tick = tick                          # called while waiting (the driver renews its leases)
        self.lod, self.memory_budget, self.max_retries = lod, memory_budget, max_retries
        self.timeout_setting, self.log = timeout_setting, log

    def _call(self, fn, *args, limit: float):
        """A remote call's result, waiting at most `limit` seconds."""
        ref = fn.remote(*args)
        ready, _ = self.ray.wait([ref], timeout=limit)
        if not ready:
            raise StreamedFailure(f"no answer within {limit:.0f} s")
        return self.ray.get(ref)

    def _plan(self, task: dict) -> dict:
        """The plan from the first actor that answers (a dead one is passed over)."""
        last: BaseException = StreamedFailure("no actor")
        limit = scene_timeout(self.timeout_setting, task["size"])
        for attempt in range(self.max_retries + 1):
            actor = self.actors[attempt % len(self.actors)]
            try:
                return self._call(actor.plan_streamed, task, self.lod, self.memory_budget, limit=limit)
            except Exception as exc:
                if not is_actor_death(exc):
                    raise
                last = exc
                self.log(f"{task['rel']}: the planning actor died (attempt {attempt + 1}); trying another")
        raise last

    def _submit(self, actor, task: dict, unit: tuple, plan) -> tuple:
        """Start one unit on an actor: (the ref whose result says it finished, a group's refs to
        its coarse levels' splats)."""
        if unit[0] == "group":
            refs = actor.compress_group.options(num_returns=plan.levels).remote(
                task, unit[1], plan.levels, self.memory_budget)
            refs = refs if plan.levels > 1 else [refs]
            return refs[0], refs[1:]
        _, level, bucket, payloads = unit                  # payloads: (leaves, coarse ref) per group
        return actor.compress_bucket.remote(task, level, bucket, [p[0] for p in payloads],
                                            *[p[1] for p in payloads]), []

    @staticmethod
    def _limit_splats(unit: tuple) -> int:
        return unit[1].splats if unit[0] == "group" else 0

    def _units(self, task: dict, plan) -> tuple[list, dict, list]:
        """Every group, then every bucket of coarse levels as its groups finish, spread over the
        actors; returns (the files written, leaf -> bound, the groups' results)."""
        n_groups = len(plan.groups)
        queue = deque(("group", spec) for spec in plan.groups)
        packer = BucketPacker(n_groups)
        attempts: dict = {}
        in_flight: dict = {}                      # ref -> (actor index, unit, deadline, coarse refs)
        load = [0] * len(self.actors)
        down: dict = {}                           # ready() ref -> actor index, while Ray restarts it
        files, bounds, results = [], {}, []
        while queue or in_flight:
            self.tick()
            for i, actor in enumerate(self.actors):
                while i not in down.values() and load[i] < IN_FLIGHT_PER_ACTOR and queue:
                    unit = queue.popleft()
                    limit = scene_timeout(self.timeout_setting, max(self._limit_splats(unit), 1 << 20) * PLY_BYTES_PER_SPLAT)
                    ref, coarse = self._submit(actor, task, unit, plan)
                    in_flight[ref] = (i, unit, time.monotonic() + limit, coarse)
                    load[i] += 1
            if not in_flight and down and queue:      # every actor restarting: wait for one
                ready, _ = self.ray.wait(list(down), num_returns=1, timeout=5.0)
            else:
                ready, _ = self.ray.wait(list(in_flight) + list(down), num_returns=1, timeout=1.0)
            for ref in ready:
                if ref in down:
                    i = down.pop(ref)
                    try:
                        self.ray.get(ref)
                    except Exception as exc:
                        if not is_actor_death(exc):
                            raise
                        down[self.actors[i].ready.remote()] = i
                    continue
                i, unit, _, coarse = in_flight.pop(ref)
                load[i] -= 1
                what = f"chunk group {unit[1].group}" if unit[0] == "group" else f"level {unit[1]} bucket {unit[2]}"
                try:
                    res = self.ray.get(ref)
                except Exception as exc:
                    if not is_actor_death(exc):
                        raise StreamedFailure(f"{what}: {type(exc).__name__}: {exc}") from exc
                    attempts[what] = attempts.get(what, 0) + 1
                    if attempts[what] > self.max_retries:
                        raise StreamedFailure(f"{what}: its actor died {attempts[what]} times") from exc
                    self.log(f"{task['rel']}: {what}'s actor died; retrying it")
                    queue.appendleft(unit)
                    if i not in down.values():
                        down[self.actors[i].ready.remote()] = i
                    continue
                if unit[0] == "bucket":               # its payloads (and so the coarse objects) go with it
                    files.append(res)
                    continue
                results.append(res)
                files.append(res.file)
                bounds.update(zip(res.leaves, res.bounds))
                for bucket in packer.add(res.group, [(res.leaves, c) for c in coarse]):
                    queue.appendleft(("bucket", *bucket))   # ahead of the groups left: frees its inputs soonest
                self.log(f"{task['rel']}: chunk group {len(results)}/{n_groups} done")
            now = time.monotonic()
            for ref, (i, unit, deadline, _) in list(in_flight.items()):
                if now > deadline:
                    self.ray.kill(self.actors[i], no_restart=False)
                    raise StreamedFailure(f"{unit[0]} did not finish in time (--scene-timeout); its actor was restarted")
        return files, bounds, results

    def run(self, task: dict, run_id: str, shash: str) -> dict:
        """Compress one streamed scene; returns its manifest row (never raises for the scene)."""
        row = empty_row()
        row.update(run_id=run_id, input_uri=task["input_uri"], input_bytes=task["size"], input_etag=task["etag"],
                   input_format=task.get("format"), output_uri=task["output_uri"], settings_hash=shash,
                   started_at=utcnow(), attempts=1)
        t0 = time.perf_counter()
        try:
            if self.store.exists(task["output_uri"]):
                self.store.delete(task["output_uri"])     # an old index must not cover half-new chunks
            info = self._plan(task)
            plan = info["plan"]
            self.log(f"{task['rel']}: {plan.count:,} splats -> {len(plan.groups)} chunk group(s) x {plan.levels} "
                     f"level(s) over {len(self.actors)} actor(s)")
            files, bounds, results = self._units(task, plan)
            meta = lod_meta(plan.tree, files, bounds, plan.levels, ChunkOptions(**self.lod["chunks"]))
            meta_bytes = write_lod_meta(meta, lambda data: self.store.put(task["output_uri"], data))
        except Exception as exc:
            row.update(status="failed", error_class=type(exc).__name__,
                       error_message=(str(exc).strip() or repr(exc))[:2000], finished_at=utcnow())
            return row
        seconds: dict = {"read": info["seconds"]}
        fid: dict = {}
        for r in results:
            add_seconds(seconds, r.seconds)
        for f in files:
            add_seconds(seconds, f.seconds)
            fid = worst(fid, f.fidelity)
        out_bytes = meta_bytes + sum(f.bytes for f in files)
        row.update(status="ok", splats=plan.count, input_format=info["format"], input_bytes=info["input_bytes"],
                   sh_degree=info["sh_degree"], output_bytes=out_bytes,
                   ratio=info["input_bytes"] / out_bytes if out_bytes else None,
                   lod_levels=plan.levels, lod_files=len(meta["filenames"]), lod_counts=json.dumps(meta["counts"]),
                   node=", ".join(sorted({r.worker for r in results})), gpu=info["where"].split(" ", 1)[-1], finished_at=utcnow())
        for s in STAGES:
            row[f"seconds_{s}"] = seconds.get(s)
        row["seconds_total"] = time.perf_counter() - t0    # wall time of the scene, not the sum
        for f in FIDELITY:
            row[f"fid_{f}"] = fid.get(f)
        return row
