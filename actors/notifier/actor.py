"""The notifier pool on Ray: named async actors `notifier-0..N-1` that deliver batches of outbox rows.

Actors hold no state worth keeping (a Sender, its HTTP client, and a few seconds' cache of each tenant's
notification settings read from PostgreSQL), so restarts are free. `deliver_batch` is
not retried by Ray (`max_task_retries=0`): a lost batch stays claimed in the outbox and is re-claimed after
the lease, where the deterministic Message-ID / idempotency header makes the rare resend harmless.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import ray

from actors.notifier.sender import DeliveryResult, NotifierSettings, Sender
from actors.notifier.tenant_source import TenantSettingsSource
from actors.placement import NAMESPACE


class NotifierActor:
    """One notifier process. Create through `notifier_pool`, or directly in tests without Ray.

    `tenants` (`database_url`, `secret_keys`): where each tenant's own quiet hours, time zone and alert channels
    are read; without it every tenant gets the installation's settings.
    """

    def __init__(self, settings: NotifierSettings, tenants: Mapping[str, Any] | None = None) -> None:
        self._settings = settings
        self._tenant_config = dict(tenants) if tenants and tenants.get("database_url") else None
        self._sender: Sender | None = None
        self._tenants: TenantSettingsSource | None = None

    def _ensure_sender(self) -> Sender:
        if self._sender is None:  # created lazily so the HTTP client binds to the actor's event loop
            if self._tenant_config is not None:
                self._tenants = TenantSettingsSource(self._tenant_config["database_url"],
                                                     tuple(self._tenant_config.get("secret_keys") or ()))
            self._sender = Sender(self._settings, tenants=self._tenants)
        return self._sender

    async def deliver_batch(
        self, rows: list[dict[str, Any]], now_iso: str, recent_by_customer: dict[str, list[str]]
    ) -> list[dict[str, Any]]:
        """Deliver `rows` at `now_iso`; `recent_by_customer` maps `customer_key` → ISO send times."""
        now = datetime.fromisoformat(now_iso)
        recent = {
            key: [datetime.fromisoformat(t) for t in times] for key, times in recent_by_customer.items()
        }
        results = await self._ensure_sender().deliver_many(rows, now, recent)
        return [result.model_dump(mode="json") for result in results]

    async def configure(self, settings: NotifierSettings, tenants: Mapping[str, Any] | None = None) -> None:
        """Take the caller's settings. A named notifier outlives the platform process that created it (Ray keeps
        it): the next outbox worker hands it the settings it was started with, so a changed SMTP_URL, alert
        channel or database is used at once, not the first creator's."""
        if settings == self._settings and (dict(tenants) if tenants and tenants.get("database_url") else None) \
                == self._tenant_config:
            return
        await self.close()
        self.__init__(settings, tenants)  # type: ignore[misc]  # the same state as a fresh actor

    async def ping(self) -> str:
        return "pong"

    async def close(self) -> None:
        if self._sender is not None:
            await self._sender.aclose()
            self._sender = None
        if self._tenants is not None:
            await self._tenants.aclose()
            self._tenants = None


RemoteNotifier = ray.remote(NotifierActor)


def notifier_pool(size: int, settings: NotifierSettings, tenants: Mapping[str, Any] | None = None) -> list[Any]:
    """Create (or look up) `notifier-0..size-1` in namespace "payrisk". Requires `ray.init` first.

    `tenants`: `{"database_url": …, "secret_keys": […]}` to honour each tenant's own settings (see NotifierActor).
    """
    options = {"namespace": NAMESPACE, "get_if_exists": True, "num_cpus": 0, "max_restarts": -1}
    return [
        RemoteNotifier.options(name=f"notifier-{index}", max_task_retries=0, **options).remote(settings, tenants)
        for index in range(size)
    ]


class ActorDeliverer:
    """Adapts a pool of notifier actors to the dispatcher's `Deliverer`: each batch goes to the next actor."""

    def __init__(self, handles: Sequence[Any], policy_lookback: timedelta) -> None:
        self._handles = itertools.cycle(handles)
        self._lookback = policy_lookback

    @property
    def lookback(self) -> timedelta:
        return self._lookback

    async def deliver_many(
        self,
        rows: Sequence[Mapping[str, Any]],
        now: datetime,
        recent_by_customer: Mapping[str, Sequence[datetime]],
    ) -> list[DeliveryResult]:
        recent = {key: [t.isoformat() for t in times] for key, times in recent_by_customer.items()}
        raw = await next(self._handles).deliver_batch.remote(
            [dict(row) for row in rows], now.isoformat(), recent
        )
        return [DeliveryResult.model_validate(item) for item in raw]
