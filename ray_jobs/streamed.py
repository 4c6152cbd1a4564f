"""One huge scene as a streamed SOG, its chunk groups spread over every actor of the cluster.

The driver asks one actor for the plan (the chunk tree over the centres: positions only, read
by ranges), then hands the units out in the order of `StreamedSchedule` (the one the local
writer follows), at most IN_FLIGHT_PER_ACTOR in flight per actor (`pool.ActorPool`), so a huge
scene keeps every GPU busy. A group writes level 0 and returns each coarser level's splats as
its own Ray object; once the 2^k groups of a level-k bucket are done, the bucket goes to
whichever actor is free, which receives exactly those objects and writes one file. A unit whose
actor dies goes back to the queue (up to --max-retries per unit); any other failure, or a unit
past its time limit, fails the scene. lod-meta.json is deleted before the first chunk and
written by the driver only after every group has finished: a crash leaves a visibly unfinished
folder, never an index that points at missing chunks. The scene gets one manifest row: level
count, files, splats per level, bytes, per-stage seconds summed over the groups, and with the
render metric (GPU actors by default, --render-metric) its level 0 scored against the input by
one actor (when the input is read whole).
"""
from __future__ import annotations

import json
import time
from typing import Callable, Optional

from sogs_core.formats.lod_meta.write import lod_meta, write_lod_meta
from sogs_core.pipeline.streamed.chunk import worst
from sogs_core.pipeline.streamed.schedule import GroupUnit, StreamedSchedule, Unit
from sogs_core.pipeline.streamed.units import DECIMATION_SPLATS, add_seconds
from sogs_core.settings import ChunkOptions

from ray_jobs.manifest import failed_row, ok_row, task_row, utcnow
from ray_jobs.pool import IN_FLIGHT_PER_ACTOR, ActorPool, is_actor_death, scene_timeout
from ray_jobs.storage import Store

#: bytes a splat takes in a PLY with SH 3 (the group time limit is sized on this)
PLY_BYTES_PER_SPLAT = 248


class StreamedFailure(Exception):
    """A unit (chunk group or bucket) of a streamed scene failed; the scene fails with it."""


class StreamedScene:
    def __init__(self, ray, actors: list, store: Store, lod: dict, memory_budget: int, max_retries: int,
                 timeout_setting: str, log: Callable[[str], None], tick: Callable[[], None] = lambda: None,
                 render_metric: Optional[bool] = False, groups_per_call: Optional[int] = None) -> None:
        """render_metric: score each scene's level 0 against its input (`SceneCompressor.streamed_render`);
        None: where the actors' devices are GPUs (each actor knows its own). groups_per_call: chunk
        groups one actor call takes at most (their levels made by one decimation call); None: what
        the planning actor's device affords (`units.groups_per_decimation`: several on a GPU, one
        on a CPU)."""
        if groups_per_call is not None and groups_per_call < 1:
            raise ValueError(f"--groups-per-call must be at least 1, not {groups_per_call}")
        self.ray, self.actors, self.store = ray, actors, store
        self.render_metric = render_metric
        self.groups_per_call = groups_per_call
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

    def _submit(self, actor, task: dict, units: list[Unit], plan) -> tuple:
        """Start units on an actor, several group units in one call or one bucket: (the ref whose
        result says they finished, per unit the refs to a group's coarse levels' splats)."""
        if isinstance(units[0], GroupUnit):
            per = plan.levels - 1
            refs = actor.compress_groups.options(num_returns=1 + len(units) * per).remote(
                task, [u.spec for u in units], plan.levels, self.memory_budget)
            refs = refs if per > 0 else [refs]
            return refs[0], [refs[1 + k * per:1 + (k + 1) * per] for k in range(len(units))]
        # a bucket's payloads: (leaves, coarse ref) per group; Ray resolves the refs on the actor
        unit = units[0]
        return actor.compress_bucket.remote(task, unit.level, unit.bucket, [p[0] for p in unit.payloads],
                                            *[p[1] for p in unit.payloads]), [[]]

    def _limit(self, units: list[Unit]) -> float:
        """A call's time limit: --scene-timeout sized as a PLY of its groups' splats (at least 1M)."""
        splats = sum(u.spec.splats for u in units if isinstance(u, GroupUnit))
        return scene_timeout(self.timeout_setting, max(splats, 1 << 20) * PLY_BYTES_PER_SPLAT)

    def _take(self, schedule: StreamedSchedule, per_call: int, actors_alive: int) -> list[Unit]:
        """The next call's units: a bucket alone, or up to `per_call` groups (at most
        DECIMATION_SPLATS splats), fewer once the groups left would not give every actor's
        calls in flight a share."""
        units = [schedule.next()]
        if isinstance(units[0], GroupUnit) and per_call > 1:
            share = -(-(len(schedule.groups) + 1) // max(1, actors_alive * IN_FLIGHT_PER_ACTOR))
            units += schedule.more_groups(min(per_call, share) - 1, DECIMATION_SPLATS - units[0].spec.splats,
                                          lambda u: u.spec.splats)
        return units

    def _units(self, task: dict, plan, per_call: int = 1) -> tuple[list, dict, list]:
        """Every group, then every bucket of coarse levels as its groups finish, spread over the
        actors (up to `per_call` groups a call); returns (the files written, leaf -> bound, the
        groups' results)."""
        schedule = StreamedSchedule(plan.groups)
        pool = ActorPool(self.ray, self.actors, self.log, alive=True)   # the backfill waited for ready()
        attempts: dict = {}
        files, bounds, results = [], {}, []
        while schedule or pool.in_flight:
            self.tick()
            for i, actor in enumerate(self.actors):
                while pool.has_room(i) and schedule:
                    units = self._take(schedule, per_call, sum(pool.alive))
                    ref, coarse = self._submit(actor, task, units, plan)
                    pool.submit(i, ref, (units, coarse), self._limit(units))
            for done in pool.wait(timeout=1.0):
                units, coarse = done.flight.payload
                if done.error is not None:
                    exc = done.error
                    names = ", ".join(u.name for u in units)
                    if not done.died:
                        raise StreamedFailure(f"{names}: {type(exc).__name__}: {exc}") from exc
                    for unit in reversed(units):       # back to the front, in their order
                        attempts[unit.name] = attempts.get(unit.name, 0) + 1
                        if attempts[unit.name] > self.max_retries:
                            raise StreamedFailure(f"{unit.name}: its actor died {attempts[unit.name]} times") from exc
                        schedule.requeue(unit)
                    self.log(f"{task['rel']}: the actor of {names} died; retrying")
                    continue
                if not isinstance(units[0], GroupUnit):   # a bucket: its payloads (and so the coarse objects) go with it
                    files.append(done.value)
                    continue
                for res, refs in zip(done.value, coarse):
                    results.append(res)
                    files.append(res.file)
                    bounds.update(zip(res.leaves, res.bounds))
                    schedule.group_done(res.group, [(res.leaves, c) for c in refs])
                self.log(f"{task['rel']}: chunk group {schedule.groups_done}/{schedule.n_groups} done")
            for _, flight in pool.expired():
                units, _ = flight.payload
                pool.restart(flight.actor)
                kind = "group" if isinstance(units[0], GroupUnit) else "bucket"
                raise StreamedFailure(f"{kind} did not finish in time (--scene-timeout); its actor was restarted")
        return files, bounds, results

    def _render(self, task: dict, meta: dict) -> dict:
        """The render metric of level 0 from the first actor that answers, as the fidelity keys
        and seconds a row takes; {} where it is off, skipped (input read by ranges) or failed:
        the scene is written and stays ok, its render columns null, and the log says why."""
        if self.render_metric is False:
            return {}
        folder = task["output_uri"].rsplit("/", 1)[0]
        level0 = [f"{folder}/{name}" for name in meta["filenames"] if name.startswith("0_")]
        limit = scene_timeout(self.timeout_setting, task["size"])
        for attempt, actor in enumerate(self.actors):
            try:
                scores = self._call(actor.streamed_render, task, level0, self.memory_budget, limit=limit)
                break
            except Exception as exc:
                if is_actor_death(exc) and attempt + 1 < len(self.actors):
                    continue                      # a dead actor is passed over, as for the plan
                self.log(f"{task['rel']}: render metric failed ({type(exc).__name__}: {exc}); "
                         "its columns stay empty")
                return {}
        if scores is None:
            self.log(f"{task['rel']}: render metric skipped: the input is larger than --memory-budget "
                     f"and was read by ranges (the metric renders it whole)")
            return {}
        return scores

    def run(self, task: dict, run_id: str, shash: str) -> dict:
        """Compress one streamed scene; returns its manifest row (never raises for the scene)."""
        row = task_row(task, run_id, shash, started_at=utcnow(), attempts=1)
        t0 = time.perf_counter()
        try:
            if self.store.exists(task["output_uri"]):
                self.store.delete(task["output_uri"])     # an old index must not cover half-new chunks
            info = self._plan(task)
            plan = info["plan"]
            self.log(f"{task['rel']}: {plan.count:,} splats -> {len(plan.groups)} chunk group(s) x {plan.levels} "
                     f"level(s) over {len(self.actors)} actor(s)")
            per_call = self.groups_per_call or info.get("groups_per_call", 1)
            files, bounds, results = self._units(task, plan, per_call)
            meta = lod_meta(plan.tree, files, bounds, plan.levels, ChunkOptions(**self.lod["chunks"]))
            meta_bytes = write_lod_meta(meta, lambda data: self.store.put(task["output_uri"], data))
        except Exception as exc:
            return failed_row(row, exc, finished_at=utcnow())
        rendered = self._render(task, meta)
        seconds: dict = {"read": info["seconds"]}
        fid: dict = {}
        for r in results:
            add_seconds(seconds, r.seconds)
        for f in files:
            add_seconds(seconds, f.seconds)
            fid = worst(fid, f.fidelity)
        if rendered:
            seconds["render"] = rendered.pop("seconds")
            fid.update(rendered)
        seconds["total"] = time.perf_counter() - t0    # wall time of the scene, not the sum
        out_bytes = meta_bytes + sum(f.bytes for f in files)
        # as for a single SOG: the splats written (level 0) plus those left out at opacity 0
        written = meta["counts"][0] if meta["counts"] else plan.count
        return ok_row(row, seconds, fid, splats=written, dropped_invisible=plan.count - written,
                      input_format=info["format"],
                      input_bytes=info["input_bytes"], sh_degree=info["sh_degree"], output_bytes=out_bytes,
                      ratio=info["input_bytes"] / out_bytes if out_bytes else None,
                      lod_levels=plan.levels, lod_files=len(meta["filenames"]), lod_counts=json.dumps(meta["counts"]),
                      node=", ".join(sorted({r.worker for r in results})), gpu=info["where"].split(" ", 1)[-1],
                      finished_at=utcnow())
