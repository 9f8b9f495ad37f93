"""Drains the transactional outbox after commit: emails and alerts through the notifier pool."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import ray
import structlog

from actors.clock import make_clock
from payrisk.logging import configure_logging
from payrisk.store import Database, StoreError

log = structlog.get_logger("payrisk.outbox")


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class OutboxWorker:
    def __init__(self, config: dict[str, Any]) -> None:
        configure_logging(config.get("log_level", "info"))
        self.config = config
        self._db: Database | None = None
        self._deliverer: Any = None
        self._clock = make_clock(config.get("clock", "real"))
        self._task: asyncio.Task[None] | None = None
        self.handled = 0

    async def _ready(self) -> tuple[Database, Any]:
        if self._db is None:
            self._db = Database(self.config["database_url"], max_size=2)
            await self._db.open()
        if self._deliverer is None:
            from actors.notifier.actor import ActorDeliverer, notifier_pool
            from actors.notifier.sender import NotifierSettings

            env = {**os.environ, **{k: v for k, v in self.config.get("notifier_env", {}).items() if v}}
            settings = NotifierSettings.from_env(env)
            pool = notifier_pool(int(self.config.get("notifiers", 1)), settings)
            self._deliverer = ActorDeliverer(pool, settings.policy.longest_window)
        return self._db, self._deliverer

    async def start(self, poll_seconds: float = 1.0) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(poll_seconds))

    async def _loop(self, poll_seconds: float) -> None:
        while True:
            try:
                while await self.tick() > 0:
                    pass
            except (StoreError, ray.exceptions.RayError, OSError) as exc:
                log.warning("outbox.tick_failed", error=str(exc)[:200])
            await asyncio.sleep(poll_seconds)

    async def tick(self, limit: int = 50) -> int:
        """Deliver the outbox rows due now; returns how many rows were handled."""
        from actors.notifier.dispatch import run_once

        db, deliverer = await self._ready()
        now = await self._clock.now()
        handled = await run_once(db.pool, deliverer, now, "outbox-worker", limit)
        handled += await self._provider_actions(db, now, limit)
        self.handled += handled
        return handled

    async def _provider_actions(self, db: Database, now: Any, limit: int) -> int:
        """Final actions (cancel the subscription, mark the invoice uncollectible), each key sent once."""
        from payrisk.store import outbox

        async with db.transaction() as conn:
            rows = await outbox.claim(conn, now, "outbox-worker", topics=("provider",), limit=limit)
        adapter = self._adapter()
        for row in rows:
            if adapter is None:
                await self._retry_later(db, row.outbox_id, "no STRIPE_API_KEY configured", minutes=60)
                continue
            try:
                await asyncio.to_thread(adapter.final_action, row.payload["action"], row.payload["invoice_id"],
                                        row.payload.get("subscription_id"), row.idempotency_key)
            except Exception as exc:  # noqa: BLE001 - any provider error: try again later, keep the reason
                await self._retry_later(db, row.outbox_id, str(exc)[:300], minutes=min(60, 2 ** row.attempts))
                continue
            async with db.connection() as conn:
                await outbox.mark_sent(conn, row.outbox_id)
        return len(rows)

    def _adapter(self) -> Any:
        if not self.config.get("stripe_api_key"):
            return None
        from actors.executor import StripeAdapter

        return StripeAdapter(self.config["stripe_api_key"], self.config.get("stripe_api_base"))

    async def _retry_later(self, db: Database, outbox_id: int, error: str, minutes: float) -> None:
        async with db.connection() as conn:
            await conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = %s, claimed_by = NULL, claimed_at = NULL,"
                " available_at = available_at + make_interval(mins => %s) WHERE outbox_id = %s",
                (error, minutes, outbox_id))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
