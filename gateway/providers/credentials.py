"""A tenant's credentials for one registered provider: its own (envelope-encrypted in `tenant_secrets`), else, for
the `default` tenant only, the installation's settings (`ADYEN_HMAC_KEYS`, `PADDLE_WEBHOOK_SECRETS`, …). Another
tenant never falls back to the installation's secrets: one tenant's key must not verify another's deliveries.
Cached per process for a few seconds, so a rotated secret is in use within `ttl` seconds."""

from __future__ import annotations

import time
from typing import Any

import structlog

from gateway.providers.registry import WebhookProvider
from store import Database, tenant_secrets
from store.secrets import Keyring, SecretKeyError

log = structlog.get_logger("payrisk.gateway")
DEFAULT_TENANT = "default"


class ProviderCredentials:
    def __init__(self, db: Database, settings: Any, keyring: Keyring, ttl: float = 10.0) -> None:
        self._db, self._settings, self._keyring, self._ttl = db, settings, keyring, ttl
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    async def of(self, tenant: str, provider: WebhookProvider) -> dict[str, Any]:
        key = (tenant, provider.name)
        hit = self._cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        values = await self._load(tenant, provider)
        if len(self._cache) < 10_000:
            self._cache[key] = (time.monotonic() + self._ttl, values)
        return values

    async def _load(self, tenant: str, provider: WebhookProvider) -> dict[str, Any]:
        defaults = provider.defaults(self._settings)
        values = {k: v for k, v in defaults.items() if k not in provider.secrets}  # tolerances, environment
        if tenant == DEFAULT_TENANT:
            values.update(defaults)
        if self._keyring.configured:
            async with self._db.connection() as conn:
                for name in provider.secrets:
                    own = await self._secret(conn, tenant, name)
                    if own:
                        values[name] = own
        return values

    async def _secret(self, conn: Any, tenant: str, name: str) -> Any:
        try:
            return await tenant_secrets.get(conn, self._keyring, tenant, name)
        except SecretKeyError as exc:
            log.error("provider_secret.unreadable", tenant=tenant, name=name, error=str(exc))
            return None
