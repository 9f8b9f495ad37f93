"""The plumbing shared by the platform's background actors (scheduler, outbox worker, monitor): configuration,
logging, the injected clock, a lazily opened database pool, and a `tick` loop.

The loop never dies quietly: any exception in a pass is logged with its type and the actor's name, the loop backs
off (doubling up to `MAX_BACKOFF_SECONDS`) and goes on. With `autostart` (seconds between passes) in its config
the actor starts its own loop when it is created — and so again whenever Ray restarts it; `payrisk up` uses that.
Tests on a simulated clock leave `autostart` out and call `tick` themselves. `health` says when the loop last
completed a pass, so a stalled loop can be seen (`payrisk chaos` checks it after every fault).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import ray
import structlog

from actors.clock import make_clock
from actors.metrics import loop_metrics
from settings.logging import configure_logging
from settings.process import DEFAULT_THRESHOLD, tune_gc
from store import Database, StoreError, StoreUnavailable

log = structlog.get_logger("payrisk.actors")

#: failures a tick may hit that the next tick retries (logged as warnings; anything else is logged as an error,
#: with its traceback, and retried too: a background loop must outlive a bug in one pass)
RETRYABLE = (StoreError, ray.exceptions.RayError, OSError)
MAX_BACKOFF_SECONDS = 30.0


def backoff(poll_seconds: float, failures_in_a_row: int) -> float:
    """Seconds before the next pass: the poll interval; after failures 1, 2, 4 … s, at most the larger of the
    poll interval and MAX_BACKOFF_SECONDS (a short outage is retried soon, a long one is not hammered)."""
    if not failures_in_a_row:
        return poll_seconds
    return float(min(2.0 ** (failures_in_a_row - 1), max(MAX_BACKOFF_SECONDS, poll_seconds)))


def stall_after(poll_seconds: float) -> float:
    """A loop that completed no pass for this long is stalled: two intervals and one longest backoff, plus slack
    for a slow pass (a loop that only backs off after failures is reported too: it is not doing its work)."""
    return 2 * poll_seconds + MAX_BACKOFF_SECONDS + 5.0


def lease_holder(prefix: str, fallback: str | None = None) -> str:
    """The name a background actor claims rows under: `prefix:<actor id>`, the same for every incarnation of one
    actor (Ray keeps an actor's id across restarts) and another for another actor, so that a restarted actor can
    take back what it died holding instead of waiting out the lease. Outside Ray: `fallback`, else `prefix`."""
    try:
        actor_id = ray.get_runtime_context().get_actor_id()
    except Exception:  # noqa: BLE001 - outside Ray (tests calling the class directly)
        actor_id = None
    return f"{prefix}:{actor_id}" if actor_id else (fallback or prefix)


class PeriodicActor:
    name = "periodic"

    def __init__(self, config: dict[str, Any]) -> None:
        configure_logging(config.get("log_level", "info"), config.get("log_format"))
        tune_gc(int(config.get("gc_threshold", DEFAULT_THRESHOLD)))
        self.config = config
        self._clock = make_clock(config.get("clock", "real"))
        self._db: Database | None = None
        self._task: asyncio.Task[None] | None = None
        self._ticks = 0
        self._failures = 0
        self._last_tick: float | None = None  # wall clock of the last completed pass
        self._last_error: str | None = None
        self._loop_started: float | None = None  # wall clock when the loop (of this incarnation) started
        self._interval: float | None = None  # seconds between passes, once the loop runs
        self._orphans_released = False  # what a dead incarnation held was given back (`release_orphans_once`)
        self._orphans_lock = asyncio.Lock()
        if config.get("autostart"):
            # __init__ runs before the actor's event loop serves calls: ask ourselves to start once it does
            ray.get_runtime_context().current_actor.start.remote(float(config["autostart"]))

    async def _database(self) -> Database:
        if self._db is None:
            self._db = Database(self.config["database_url"], max_size=2)
            await self._db.open()
        return self._db

    async def release_orphans_once(self, worker: str, release: Callable[[], Awaitable[int]]) -> None:
        """Before this incarnation's first claim, give back what a dead one of the same actor held (`release`
        returns how many). Once per incarnation, even when passes run side by side (a second release could take
        back a claim the first pass has just made); tried again on the next pass when it failed."""
        async with self._orphans_lock:
            if self._orphans_released:
                return
            released = await release()
            self._orphans_released = True
        if released:
            log.info("loop.released_orphans", loop=self.name, released=released, worker=worker)

    async def tick(self) -> Any:
        """One pass."""
        raise NotImplementedError

    async def work_done(self) -> int:
        """Run one pass and say how much it did: the loop runs again at once while this is > 0."""
        done = await self.tick()
        return done if isinstance(done, int) else 0

    def on_tick_failed(self) -> None:
        """Hook: forget cached handles after a failed pass."""

    async def start(self, poll_seconds: float = 1.0) -> None:
        """Run `tick` forever in the background (idempotent: a second call changes nothing)."""
        if self._task is None or self._task.done():
            self._interval = poll_seconds
            self._task = asyncio.get_running_loop().create_task(self._loop(poll_seconds))

    async def _loop(self, poll_seconds: float) -> None:
        failures_in_a_row = 0
        self._loop_started = time.time()
        while True:
            try:
                while await self.work_done() > 0:
                    self._mark_tick()
                self._mark_tick()
                failures_in_a_row = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - log, back off, go on: a loop outlives any one failed pass
                failures_in_a_row += 1
                await self._failed(exc, failures_in_a_row)
            await asyncio.sleep(backoff(poll_seconds, failures_in_a_row))

    def _mark_tick(self) -> None:
        self._ticks += 1
        self._last_tick = time.time()

    async def _failed(self, exc: Exception, in_a_row: int) -> None:
        self._failures += 1
        self._last_error = f"{type(exc).__name__}: {exc}"[:300]
        with contextlib.suppress(Exception):
            loop_metrics().failed(self.name, "retryable" if isinstance(exc, RETRYABLE) else "bug")
        if isinstance(exc, RETRYABLE):
            log.warning(f"{self.name}.tick_failed", error=self._last_error, in_a_row=in_a_row)
        else:
            log.error(f"{self.name}.tick_failed", error=self._last_error, in_a_row=in_a_row, exc_info=exc)
        with contextlib.suppress(Exception):
            self.on_tick_failed()
        if isinstance(exc, StoreUnavailable) and self._db is not None:
            # after a PostgreSQL restart the pool still holds dead connections, one failed pass each: start afresh
            db, self._db = self._db, None
            with contextlib.suppress(Exception):
                await db.close()

    def __repr__(self) -> str:
        """Ray shows this in the dashboard's actor list and in front of the actor's log lines."""
        return f"{type(self).__name__}({self.name}, ticks={self._ticks}, failures={self._failures})"

    async def health(self) -> dict[str, Any]:
        """Is the loop running, how many passes it completed and failed, when it last completed one (epoch s), and
        whether it is `stalled`: running but without a completed pass for longer than `stall_after(interval)`."""
        running = self._task is not None and not self._task.done()
        since = self._last_tick or self._loop_started
        stalled = bool(running and self._interval is not None and since is not None
                       and time.time() - since > stall_after(self._interval))
        return {"name": self.name, "running": running, "stalled": stalled, "interval": self._interval,
                "ticks": self._ticks, "failures": self._failures, "last_tick": self._last_tick,
                "loop_started": self._loop_started, "last_error": self._last_error}

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._db is not None:
            await self._db.close()
            self._db = None
