"""Tenant lookups for the gateway, cached per process (tenants change rarely)."""

from __future__ import annotations

import time

from payrisk.store import Database


class TenantDirectory:
    def __init__(self, db: Database, default_secrets: tuple[str, ...], ttl_seconds: float = 30.0) -> None:
        self._db = db
        self._default_secrets = default_secrets
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, tuple[str, ...] | None]] = {}

    async def exists(self, tenant_id: str) -> bool:
        return await self._entry(tenant_id) is not None

    async def stripe_secrets(self, tenant_id: str) -> tuple[str, ...]:
        """The tenant's own webhook secrets, else the platform's STRIPE_WEBHOOK_SECRET list."""
        return await self._entry(tenant_id) or self._default_secrets

    async def _entry(self, tenant_id: str) -> tuple[str, ...] | None:
        cached = self._cache.get(tenant_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with self._db.connection() as conn:
            cur = await conn.execute("SELECT settings FROM tenants WHERE tenant_id = %s", (tenant_id,))
            row = await cur.fetchone()
        value: tuple[str, ...] | None = None
        if row is not None:
            value = tuple(row["settings"].get("stripe_webhook_secrets", ())) or ()
        if row is not None or len(self._cache) < 10_000:
            self._cache[tenant_id] = (time.monotonic() + self._ttl, value)
        return value
