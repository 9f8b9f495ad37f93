"""The plumbing shared by the platform's background actors (scheduler, outbox worker, monitor): configuration,
logging, the injected clock, a lazily opened database pool, and a `tick` loop that `payrisk up` starts (tests
call `tick` themselves on a simulated clock)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import ray
import structlog

from actors.clock import make_clock
from payrisk.logging import configure_logging
from payrisk.store import Database, StoreError

log = structlog.get_logger("payrisk.actors")

#: failures a tick may hit that the next tick retries; anything else is a bug and surfaces
RETRYABLE = (StoreError, ray.exceptions.RayError, OSError)


class PeriodicActor:
    name = "periodic"

    def __init__(self, config: dict[str, Any]) -> None:
        configure_logging(config.get("log_level", "info"))
        self.config = config
        self._clock = make_clock(config.get("clock", "real"))
        self._db: Database | None = None
        self._task: asyncio.Task[None] | None = None

    async def _database(self) -> Database:
        if self._db is None:
            self._db = Database(self.config["database_url"], max_size=2)
            await self._db.open()
        return self._db

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
        """Run `tick` forever in the background."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(poll_seconds))

    async def _loop(self, poll_seconds: float) -> None:
        while True:
            try:
                while await self.work_done() > 0:
                    pass
            except RETRYABLE as exc:
                log.warning(f"{self.name}.tick_failed", error=str(exc)[:200])
                self.on_tick_failed()
            await asyncio.sleep(poll_seconds)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._db is not None:
            await self._db.close()
            self._db = None
