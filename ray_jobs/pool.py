"""The compressor actors as a pool: who is alive, what each one runs, and until when.

Both drivers hand work to the same actors under the same rules: the scene scheduler
(`scheduler.Scheduler`, one scene per call) and a streamed scene (`streamed.StreamedScene`, one
chunk group or bucket per call).

- An actor gets at most IN_FLIGHT_PER_ACTOR calls at once (the actor class runs that many
  concurrently: one call's download and WebP encoding overlap the other's GPU stages).
- Only actors known to be alive get work. An actor whose call fails with an actor death is
  marked down, and is sent nothing until Ray has restarted it and its `ready()` answers: a
  call sent to a restarting actor would fail too, and count an attempt for nothing.
- Every call has a deadline; `expired` lists the calls past it, `restart` kills the actor
  (Ray starts it again) and marks it down.

What to do with a result, a failure or an expired call is the driver's: the pool only keeps
the books.
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from ray_jobs.manifest import utcnow

IN_FLIGHT_PER_ACTOR = 2


def scene_timeout(setting: str, size_bytes: int) -> float:
    """--scene-timeout: seconds, or auto = 600 s + 10 s per MB of input: far above what a GPU or
    even a CPU actor needs for a scene of that size, yet never forever."""
    if setting == "auto":
        return 600.0 + 10.0 * size_bytes / 1e6
    return float(setting)


def is_actor_death(exc: BaseException) -> bool:
    """Whether a call failed because its actor died (killed, out of memory, node lost), not
    because of what it was asked to do."""
    import ray.exceptions as rex

    return isinstance(exc, (rex.RayActorError, getattr(rex, "ActorUnavailableError", rex.RayActorError)))


@dataclass
class Flight:
    """One call in flight: the actor running it, what the driver needs back with its result
    (`payload`), its time limit and deadline, and when it was sent."""

    actor: int
    payload: object
    limit: float
    deadline: float
    started: dt.datetime = field(default_factory=utcnow)


@dataclass
class Finished:
    """A call that ended: its flight and its value, or the error it raised (`died`: an actor
    death, after which the actor has been marked down)."""

    flight: Flight
    value: object = None
    error: Optional[BaseException] = None
    died: bool = False


class ActorPool:
    def __init__(self, ray, actors: list, log: Callable[[str], None] = lambda msg: None,
                 alive: bool = False) -> None:
        """`alive=False`: every actor must answer ready() before it gets work (its start, imports
        and warm-up do not eat into the first calls' time limits); `alive=True`: the actors are
        known to have answered already."""
        self.ray, self.actors, self.log = ray, actors, log
        self.alive = [alive] * len(actors)
        self.load = [0] * len(actors)
        self.in_flight: dict = {}                 # ref -> Flight
        self.recovering: dict = {} if alive else {a.ready.remote(): i for i, a in enumerate(actors)}
        self._none_alive_since: Optional[float] = None

    # -- sending -------------------------------------------------------------------------------
    def has_room(self, i: int) -> bool:
        """Whether actor i is alive and runs fewer than IN_FLIGHT_PER_ACTOR calls."""
        return self.alive[i] and self.load[i] < IN_FLIGHT_PER_ACTOR

    def submit(self, i: int, ref, payload: object, limit: float) -> Flight:
        """Record a call just sent to actor i (`ref`: the object whose result says it ended),
        due within `limit` seconds."""
        flight = Flight(i, payload, limit, time.monotonic() + limit)
        self.in_flight[ref] = flight
        self.load[i] += 1
        return flight

    # -- receiving -----------------------------------------------------------------------------
    def wait(self, timeout: float = 1.0) -> list[Finished]:
        """Wait up to `timeout` seconds for the next call or ready() answer; returns the calls
        that ended (an actor that answered ready() is alive again, one that did not stays down)."""
        refs = list(self.in_flight) + list(self.recovering)
        if not refs:
            time.sleep(min(timeout, 0.5))
            return []
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=timeout)
        finished = []
        for ref in ready:
            if ref in self.recovering:
                self._on_ready(ref)
                continue
            flight = self.in_flight.pop(ref)
            self.load[flight.actor] -= 1
            try:
                finished.append(Finished(flight, value=self.ray.get(ref)))
            except Exception as exc:
                died = is_actor_death(exc)
                if died:
                    self.mark_down(flight.actor)
                finished.append(Finished(flight, error=exc, died=died))
        return finished

    def _on_ready(self, ref) -> None:
        i = self.recovering.pop(ref)
        try:
            where = self.ray.get(ref)
        except Exception as exc:
            if not is_actor_death(exc):
                raise
            self.log(f"actor {i} is down ({str(exc).strip().splitlines()[0][:200]}); waiting for Ray to restart it")
            self.recovering[self.actors[i].ready.remote()] = i
            return
        self.alive[i] = True
        self.log(f"actor {i} ready: {where}")

    # -- trouble -------------------------------------------------------------------------------
    def mark_down(self, i: int) -> None:
        """Actor i died (or is being restarted): nothing more is sent to it until it answers ready()."""
        if self.alive[i]:
            self.alive[i] = False
            self.recovering[self.actors[i].ready.remote()] = i

    def expired(self, now: Optional[float] = None) -> list[tuple[object, Flight]]:
        """The calls past their deadline, as (ref, flight); they stay in flight until `forget`."""
        now = time.monotonic() if now is None else now
        return [(ref, f) for ref, f in self.in_flight.items() if now >= f.deadline]

    def forget(self, ref) -> Flight:
        """Stop waiting for a call (its actor is about to be restarted)."""
        flight = self.in_flight.pop(ref)
        self.load[flight.actor] -= 1
        return flight

    def restart(self, i: int) -> None:
        """Kill actor i so that Ray starts it afresh (its other calls then fail as actor deaths)."""
        self.ray.kill(self.actors[i], no_restart=False)
        self.mark_down(i)

    def none_alive_for(self) -> float:
        """Seconds since the last moment an actor was alive (0 while one is)."""
        if any(self.alive):
            self._none_alive_since = None
            return 0.0
        now = time.monotonic()
        self._none_alive_since = self._none_alive_since or now
        return now - self._none_alive_since
