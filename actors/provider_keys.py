"""Which provider API key serves a tenant: its own (`tenant_secrets.stripe_api_key`, decrypted with the keys of
PAYRISK_SECRET_KEY), else the installation's STRIPE_API_KEY. Cached for a few seconds per process, so a key
changed with `payrisk tenants update` or the admin API is in use within `ttl` seconds.

Used by the shards (retries, reads when the pool is not running), the classifier pool (`enrich`) and the outbox
worker (final actions: cancel the subscription, mark the invoice uncollectible); the plaintext stays in the actor's
memory and is never logged.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import structlog

from store import tenant_secrets
from store.secrets import Keyring, SecretKeyError

log = structlog.get_logger("payrisk.provider_keys")
TTL_SECONDS = 10.0
T = TypeVar("T")


class ProviderKeys:
    def __init__(self, config: dict[str, Any], ttl: float = TTL_SECONDS) -> None:
        self._global: str | None = config.get("stripe_api_key") or None
        self._keyring = Keyring(tuple(config.get("secret_keys") or ()))
        self._database_url: str | None = config.get("database_url")
        self._ttl = ttl
        self._cache: dict[str, tuple[float, str | None]] = {}

    def _cached(self, tenant: str) -> tuple[bool, str | None]:
        hit = self._cache.get(tenant)
        return (True, hit[1]) if hit is not None and hit[0] > time.monotonic() else (False, None)

    def _remember(self, tenant: str, row: dict[str, Any] | None) -> str | None:
        try:
            own = tenant_secrets.open_row(self._keyring, tenant, "stripe_api_key", row) if row else None
        except SecretKeyError as exc:
            log.error("provider_key.unreadable", tenant=tenant, error=str(exc))
            own = None
        key = str(own) if own else self._global
        self._cache[tenant] = (time.monotonic() + self._ttl, key)
        return key

    async def for_tenant(self, conn: Any, tenant: str) -> str | None:
        """The key for `tenant`, read with an open async connection (a shard's)."""
        hit, key = self._cached(tenant)
        if hit:
            return key
        if not self._keyring.configured:
            return self._remember(tenant, None)
        return self._remember(tenant, await tenant_secrets.sealed_row(conn, tenant, "stripe_api_key"))

    def for_tenant_sync(self, tenant: str) -> str | None:
        """The key for `tenant` from a threaded actor (the classifier pool): a short synchronous read."""
        hit, key = self._cached(tenant)
        if hit:
            return key
        if not self._keyring.configured or not self._database_url:
            return self._remember(tenant, None)
        return self._remember(tenant, tenant_secrets.sealed_row_sync(self._database_url, tenant, "stripe_api_key"))


class ClientsByKey(Generic[T]):
    """One provider client per API key, built on first use and reused (an SDK client holds its HTTP connections):
    a tenant's calls share one client, and a key that changed gets a client of its own. The least recently used
    are dropped past `size`, so rotated keys do not pile up."""

    def __init__(self, make: Callable[[str], T], size: int = 256) -> None:
        self._make, self._size = make, size
        self._clients: OrderedDict[str, T] = OrderedDict()

    def get(self, key: str) -> T:
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = self._make(key)
            while len(self._clients) > self._size:
                self._clients.popitem(last=False)
        self._clients.move_to_end(key)
        return client
