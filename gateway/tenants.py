"""Tenant lookups for the gateway, cached per process (tenants change rarely)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from store import Database, tenant_records, tenant_secrets
from store.secrets import Keyring, SecretKeyError


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
        self._keyring = Keyring(())

    def set_keyring(self, keyring: Keyring) -> None:
        """The master keys that open the tenants' encrypted webhook secrets (set once at start-up)."""
        self._keyring = keyring
        self._cache.clear()

    def forget(self, tenant_id: str) -> None:
        """Drop the cached entry (after a change made through this process)."""
        self._cache.pop(tenant_id, None)

    async def get(self, tenant_id: str) -> Tenant | None:
        """The tenant, or None when it does not exist. Its own webhook secrets (encrypted at rest; or, until
        `payrisk secrets rotate` moves them, kept in `settings`), else STRIPE_WEBHOOK_SECRET."""
        cached = self._cache.get(tenant_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with self._db.connection() as conn:
            row = await tenant_records.routing(conn, tenant_id)
            sealed = await self._sealed_secrets(conn, tenant_id) if row is not None else ()
        tenant = None
        if row is not None:
            own = sealed or tuple(row["settings"].get("stripe_webhook_secrets", ()))
            tenant = Tenant(tenant_id, own or self._default_secrets, str(row["redis_namespace"]))
        if tenant is not None or len(self._cache) < 10_000:
            self._cache[tenant_id] = (time.monotonic() + self._ttl, tenant)
        return tenant

    async def _sealed_secrets(self, conn: Any, tenant_id: str) -> tuple[str, ...]:
        if not self._keyring.configured:
            return ()
        try:
            value = await tenant_secrets.get(conn, self._keyring, tenant_id, "stripe_webhook_secrets")
        except SecretKeyError:
            return ()  # a key PAYRISK_SECRET_KEY no longer lists: fall back (and `payrisk secrets rotate` says why)
        return tuple(value) if isinstance(value, list) else ()
