"""The durable scheduler: claims due timers (SKIP LOCKED) and delivers them to each customer's home."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import ray
import structlog

from actors.metrics import SchedulerMetrics
from actors.periodic import PeriodicActor, lease_holder
from actors.placement import NAMESPACE, shard_index, shard_name
from store import Database, timers

log = structlog.get_logger("payrisk.scheduler")


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class Scheduler(PeriodicActor):
    name = "scheduler"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._handles: dict[int, Any] = {}
        self.fired = 0
        self.last_lag_seconds = 0.0
        self._metrics = SchedulerMetrics()
        self._worker = lease_holder("scheduler", f"scheduler:{id(self)}")

    def on_tick_failed(self) -> None:
        self._handles.clear()

    def _shard(self, index: int) -> Any:
        if index not in self._handles:
            self._handles[index] = ray.get_actor(shard_name(index), namespace=NAMESPACE)
        return self._handles[index]

    async def tick(self, limit: int = 500) -> int:
        """Claim the timers due now and fire them on their shards; returns how many were delivered."""
        db = await self._database()
        now = await self._clock.now()
        worker = self._worker
        await self.release_orphans_once(worker, lambda: self._release_held(db, worker))  # not in a minute
        async with db.transaction() as conn:
            due = await timers.claim_due(conn, now, worker, limit)
        if not due:
            return 0
        lags = [(now - t.due_at).total_seconds() for t in due]
        self.last_lag_seconds = max(lags)
        self._metrics.delivered(lags)
        by_shard: dict[int, list[dict[str, Any]]] = defaultdict(list)
        shards = int(self.config["shards"])
        for t in due:
            index = shard_index(t.tenant_id, t.stream_id, shards, int(self.config.get("virtual_shards", 256)))
            by_shard[index].append({"timer_id": t.timer_id, "tenant_id": t.tenant_id, "stream_id": t.stream_id,
                                    "payload": t.payload})
        results = await asyncio.gather(*(self._fire(i, batch) for i, batch in by_shard.items()),
                                       return_exceptions=True)
        failed = [t["timer_id"] for result, batch in zip(results, by_shard.values(), strict=True)
                  if isinstance(result, BaseException) for t in batch]
        for result in results:
            if isinstance(result, BaseException):
                log.warning("scheduler.fire_failed", error=str(result)[-400:])  # the tail names the cause
                self._handles.clear()
        if failed:  # release the claims: the next pass fires them again (firing is idempotent), not the lease's end
            async with db.connection() as conn:
                await timers.release(conn, failed, worker)
        fired = sum(r for r in results if isinstance(r, int))
        self.fired += fired
        return len(due) - len(failed)  # a pass whose shards were away does not make the loop spin

    @staticmethod
    async def _release_held(db: Database, worker: str) -> int:
        """The timers a dead incarnation of this scheduler held, given back (they fire on this pass)."""
        async with db.connection() as conn:
            return await timers.release_held(conn, worker)

    async def _fire(self, index: int, batch: list[dict[str, Any]]) -> int:
        """Fire a batch on its shard (a shard that cannot be found now is an error of this batch only)."""
        return int(await self._shard(index).fire_timers.options(enable_task_events=False).remote(batch))

    async def stats(self) -> dict[str, Any]:
        return {"fired": self.fired, "last_lag_seconds": self.last_lag_seconds}
