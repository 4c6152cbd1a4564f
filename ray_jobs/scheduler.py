"""The driver's loop: hand scenes to the actors, and keep every promise when things go wrong.

- A scene's row is written (durably, `ManifestWriter`) before the scene counts as done, and its
  lease is released only then.
- Only actors known to be alive get work (`pool.ActorPool`). When an actor dies (killed, OOM, node
  lost), each scene it was running counts one attempt and goes back to the queue (up to
  --max-retries, then a `failed` row with every attempt counted); the actor is sent nothing until
  Ray has restarted it and it answers again, so no scene is ever failed for "the actor is
  restarting". With no actor alive for NO_ACTOR_LIMIT_SECONDS, the scenes queued are failed.
- A scene that runs past its time limit (--scene-timeout) becomes a `failed` row and its actor is
  restarted; the other scene that actor held goes back to the queue.
- A scene whose output another run holds a lease on waits (re-checked every few seconds) until
  that run finishes it (then it is `skipped`) or its lease expires (then this run takes it).
  Every claim is followed by that check too: another run may have claimed, finished and
  released the scene between this run's plan and its claim.
"""
from __future__ import annotations

import datetime as dt
import time
from collections import deque
from typing import Callable, Optional

from ray_jobs.leases import Leases
from ray_jobs.manifest import ManifestWriter, failed_task_row, skipped_row
from ray_jobs.pool import ActorPool, Finished, scene_timeout

WAIT_RECHECK_SECONDS = 5.0
#: with no actor alive for this long, the scenes left are failed instead of waiting forever
NO_ACTOR_LIMIT_SECONDS = 600.0


class SceneTimeout(Exception):
    """A scene ran past --scene-timeout."""


class NoLiveActor(Exception):
    """No actor came back for NO_ACTOR_LIMIT_SECONDS."""


class Scheduler:
    def __init__(self, ray, actors: list, writer: ManifestWriter, leases: Leases,
                 done: Callable[[dict], Optional[dict]],
                 run_id: str, shash: str, max_retries: int, timeout_setting: str, summary: dict,
                 log: Callable[[str], None]) -> None:
        self.ray, self.actors, self.writer, self.leases = ray, actors, writer, leases
        self.done = done                  # claimed task -> another run's settled row that makes it done
        self.run_id, self.shash, self.max_retries = run_id, shash, max_retries
        self.timeout_setting = timeout_setting
        self.summary, self.log = summary, log
        # nothing is sent to an actor before it answers ready(): its start (imports, warm-up) does
        # not eat into the first scenes' time limits
        self.pool = ActorPool(ray, actors, log, alive=False)
        self.queue: deque = deque()
        self.waiting: list[tuple[float, dict, str]] = []    # (next check, task, holder)
        self.finished = 0
        self.total = 0
        self.t_start = time.monotonic()

    # -- rows ----------------------------------------------------------------------------------
    def _record(self, task: dict, row: dict) -> None:
        """The row durable first (the actor's own object when it wrote one), then the lease
        released, then the scene counted."""
        journal = row.pop("journal_uri", None)
        if journal is not None:
            self.writer.adopt(row, journal)
        else:
            self.writer.add(row)
        self.leases.release(task["output_uri"])
        self.finished += 1
        status = row["status"]
        self.summary[status if status in ("ok", "failed", "skipped") else "failed"] += 1
        elapsed = max(time.monotonic() - self.t_start, 1e-9)
        rate = self.finished / elapsed * 60
        eta = (self.total - self.finished) / rate if rate else 0
        if status == "ok":
            detail = f"{row['splats']:,} splats, {row['seconds_total']:.1f}s"
            if row.get("render_psnr") is not None:
                detail += f", render {row['render_psnr']:.2f} dB"
        else:
            detail = f"{row['error_class']}: {row['error_message']}"
        self.log(f"[{self.finished}/{self.total}] {status:<6} {task['rel']} ({detail}) "
                 f"- {rate:.1f} scenes/min, ETA {eta:.1f} min")

    def _fail(self, task: dict, exc: BaseException, started: Optional[dt.datetime] = None) -> None:
        self._record(task, failed_task_row(task, self.run_id, self.shash, exc, task.get("attempts", 0), started))

    # -- work ----------------------------------------------------------------------------------
    def _submit(self, i: int, task: dict) -> None:
        ref = self.actors[i].process.remote(task, task.get("attempts", 0))
        self.pool.submit(i, ref, task, scene_timeout(self.timeout_setting, task["size"]))

    def _fill(self) -> None:
        for i in range(len(self.actors)):
            while self.pool.has_room(i) and self.queue:
                task = self.queue.popleft()
                try:
                    holder = self.leases.claim(task["output_uri"]) if task["output_uri"] not in self.leases.held \
                        else None
                except OSError as exc:        # the output's storage refuses even the lease (a full disk)
                    task["attempts"] = task.get("attempts", 0) + 1
                    self._fail(task, exc)
                    continue
                if holder is not None:
                    if "waited_for" not in task:
                        self.log(f"waiting for {task['rel']}: its output is being written by {holder}")
                    self.waiting.append((time.monotonic() + WAIT_RECHECK_SECONDS, task, holder))
                    continue
                # another run may have claimed, finished and released it since the plan
                prev = self.done(task)
                if prev is not None:              # the other run settled it, with these settings
                    self._record(task, skipped_row(prev, self.run_id))
                    continue
                self._submit(i, task)

    def _on_result(self, done: Finished) -> None:
        task, started = done.flight.payload, done.flight.started
        if done.error is None:
            self._record(task, done.value)
            return
        task["attempts"] = task.get("attempts", 0) + 1
        if done.died and task["attempts"] <= self.max_retries:      # the pool marked its actor down
            self.log(f"{task['rel']}: its actor died (attempt {task['attempts']}); retrying")
            self.queue.appendleft(task)
            return
        self._fail(task, done.error, started)

    def _check_timeouts(self) -> None:
        for ref, flight in self.pool.expired():
            self.pool.forget(ref)
            task = flight.payload
            task["attempts"] = task.get("attempts", 0) + 1
            self._fail(task, SceneTimeout(f"did not finish within {flight.limit:.0f} s (--scene-timeout); "
                                          "its actor was restarted"), flight.started)
            self.log(f"restarting actor {flight.actor} (a scene ran past its time limit)")
            self.pool.restart(flight.actor)

    def _check_waiting(self) -> None:
        """Scenes another run held: due ones go back to the queue, where `_fill` claims them."""
        now = time.monotonic()
        due = [w for w in self.waiting if w[0] <= now]
        self.waiting = [w for w in self.waiting if w[0] > now]
        for _, task, holder in due:
            task["waited_for"] = holder
            self.queue.append(task)

    def _check_no_actor(self) -> None:
        if self.pool.none_alive_for() > NO_ACTOR_LIMIT_SECONDS:
            while self.queue:
                self._fail(self.queue.popleft(), NoLiveActor(f"no actor alive for {NO_ACTOR_LIMIT_SECONDS:.0f} s"))

    def run(self, tasks: list[dict]) -> None:
        self.queue.extend(tasks)
        self.total = len(tasks)
        while self.queue or self.pool.in_flight or self.waiting:
            self._fill()
            if self.leases.renew_due():
                self.leases.renew()
            for done in self.pool.wait(timeout=1.0):
                self._on_result(done)
            self._check_timeouts()
            self._check_waiting()
            self._check_no_actor()
        self.summary["seconds"] = time.monotonic() - self.t_start
        self.summary["scenes_per_minute"] = (self.finished / self.summary["seconds"] * 60
                                             if self.summary["seconds"] else 0.0)
