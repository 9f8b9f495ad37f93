"""Drains the transactional outbox after commit: emails and alerts through the notifier pool (which honours each
tenant's own quiet hours and alert channels), and the final provider actions with each tenant's own API key."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import ray
import structlog

from actors.periodic import PeriodicActor, lease_holder
from actors.provider_calls import ProviderCalls
from actors.provider_keys import ProviderKeys
from store import Database, outbox

log = structlog.get_logger("payrisk.outbox")
WORKER = "outbox-worker"  # the lease holder's name on claimed rows (with the actor's id inside Ray)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class OutboxWorker(PeriodicActor):
    name = "outbox"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._deliverer: Any = None
        # the tenant's own Stripe key, else STRIPE_API_KEY; one client per key
        self._calls = ProviderCalls(config, ProviderKeys(config), self._database)
        self.handled = 0
        self._worker = lease_holder(WORKER)

    async def _ready(self) -> tuple[Database, Any]:
        db = await self._database()
        if self._deliverer is None:
            from actors.notifier.actor import ActorDeliverer, notifier_pool
            from actors.notifier.sender import NotifierSettings

            settings = NotifierSettings.from_config(self.config.get("notifier", {}))
            pool = notifier_pool(int(self.config.get("notifiers", 1)), settings, self._tenant_settings())
            # the named notifiers may have been created by an earlier platform process: give them our settings
            await asyncio.gather(*(n.configure.remote(settings, self._tenant_settings()) for n in pool))
            self._deliverer = ActorDeliverer(pool, settings.policy.longest_window)
        return db, self._deliverer

    def on_tick_failed(self) -> None:
        """The notifiers may be gone (they die with the outbox incarnation that created them, or with their node):
        look the pool up, or create it, again on the next pass rather than call dead handles for ever."""
        self._deliverer = None

    async def tick(self, limit: int = 50, at: str | None = None) -> int:
        """Deliver the outbox rows due now (or at `at`, ISO 8601: a driver of simulated time that lets the pass
        run while it moves its clock on); returns how many rows were handled."""
        from actors.notifier.dispatch import run_once

        db, deliverer = await self._ready()
        # after a restart, what the last incarnation held goes out now, not when its 5-minute lease ends
        await self.release_orphans_once(self._worker, lambda: outbox.release_held(db, self._worker))
        now = datetime.fromisoformat(at) if at is not None else await self._clock.now()
        emails, actions = await asyncio.gather(run_once(db, deliverer, now, self._worker, limit),
                                               self._provider_actions(db, now, limit))  # independent rows
        handled = emails + actions
        self.handled += handled
        return handled

    def _tenant_settings(self) -> dict[str, Any]:
        """Where the notifiers read each tenant's own quiet hours and alert channels (and the keys to open them)."""
        return {"database_url": self.config.get("database_url"), "secret_keys": self.config.get("secret_keys") or ()}

    async def _provider_actions(self, db: Database, now: datetime, limit: int) -> int:
        """Final actions (cancel the subscription, mark the invoice uncollectible), each key sent once, each with
        the tenant's own provider key (else the installation's)."""
        rows = await outbox.claim(db, now, self._worker, ("provider",), limit=limit)
        for row in rows:
            await self._final_action(db, row, now)
        return len(rows)

    async def _final_action(self, db: Database, row: Any, now: datetime) -> None:
        try:
            done = await self._calls.final_action(row.tenant_id, row.payload, row.idempotency_key)
        except Exception as exc:  # noqa: BLE001 - any provider error: try again later, keep the reason
            await self._retry_later(db, row, now, str(exc)[:300], minutes=min(60, 2 ** row.attempts))
            return
        if not done:
            await self._retry_later(db, row, now, "no Stripe API key: neither the tenant's own nor STRIPE_API_KEY",
                                    minutes=60)
            return
        async with db.connection() as conn:
            await outbox.mark_sent(conn, row.outbox_id, now)

    async def _retry_later(self, db: Database, row: Any, now: datetime, error: str, minutes: float) -> None:
        async with db.connection() as conn:
            await outbox.reschedule(conn, row.outbox_id, self._worker, now + timedelta(minutes=minutes), error)
