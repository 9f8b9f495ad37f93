"""Tenant lookups for the gateway, cached per process (tenants change rarely)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from payrisk.store import Database


@dataclass(frozen=True, slots=True)
class Tenant:
    tenant_id: str
    stripe_secrets: tuple[str, ...]
    redis_namespace: str


class TenantDirectory:
    def __init__(self, db: Database, default_secrets: tuple[str, ...], ttl_seconds: float = 30.0) -> None:
        self._db = db
        self._default_secrets = default_secrets
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, Tenant | None]] = {}

    async def get(self, tenant_id: str) -> Tenant | None:
        """The tenant, or None when it does not exist. Its own webhook secrets, else STRIPE_WEBHOOK_SECRET."""
        cached = self._cache.get(tenant_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with self._db.connection() as conn:
            cur = await conn.execute("SELECT settings, redis_namespace FROM tenants WHERE tenant_id = %s",
                                     (tenant_id,))
            row = await cur.fetchone()
        tenant = None
        if row is not None:
            secrets = tuple(row["settings"].get("stripe_webhook_secrets", ())) or self._default_secrets
            tenant = Tenant(tenant_id, secrets, str(row["redis_namespace"]))
        if tenant is not None or len(self._cache) < 10_000:
            self._cache[tenant_id] = (time.monotonic() + self._ttl, tenant)
        return tenant
