"""Each tenant's notification settings, read from PostgreSQL by the notifier actor that sends for it.

A tenant's row and its alert secrets are read at most once every `ttl` seconds per tenant (as the shards pick up
classification overrides), so `payrisk tenants update` or the admin API is in effect within seconds on a running
system. The secrets (`slack_webhook_url`, `alert_webhook_secret`) are decrypted here with the keys of
PAYRISK_SECRET_KEY, like the provider keys (actors/provider_keys.py): they stay in this process's memory and are
never logged — log lines name the tenant and the secret, never a value.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from pydantic import ValidationError

from actors.notifier.tenants import TenantNotifications
from store import Database, StoreError, tenant_records, tenant_secrets
from store.secrets import Keyring, SecretKeyError

log = structlog.get_logger("payrisk.notifier")
TTL_SECONDS = 5.0
SECRET_NAMES = ("slack_webhook_url", "alert_webhook_secret")


class TenantSettingsSource:
    """`await get(tenant)` → the tenant's notification settings (None: no such tenant, the installation's)."""

    def __init__(self, database_url: str, secret_keys: Sequence[str] = (), *, ttl: float = TTL_SECONDS,
                 max_tenants: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        self._url = database_url
        self._keyring = Keyring(tuple(secret_keys))
        self._ttl, self._max, self._clock = ttl, max_tenants, clock
        self._db: Database | None = None
        self._entries: OrderedDict[str, tuple[float, TenantNotifications | None]] = OrderedDict()

    async def get(self, tenant_id: str) -> TenantNotifications | None:
        """What the tenant set, re-read when older than the TTL. While PostgreSQL cannot be read, the last value
        read stands; with none, the StoreError goes to the caller (the batch is given back and retried)."""
        entry = self._entries.get(tenant_id)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        try:
            value = await self._read(tenant_id)
        except StoreError as exc:
            if entry is None:
                raise
            log.warning("tenant_settings.read_failed", tenant=tenant_id, error=type(exc).__name__)
            return entry[1]
        self._remember(tenant_id, value)
        return value

    def forget(self, tenant_id: str | None = None) -> None:
        """Drop one tenant's entry (or all): the next `get` reads the database."""
        if tenant_id is None:
            self._entries.clear()
        else:
            self._entries.pop(tenant_id, None)

    async def aclose(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    def _remember(self, tenant_id: str, value: TenantNotifications | None) -> None:
        self._entries[tenant_id] = (self._clock() + self._ttl, value)
        self._entries.move_to_end(tenant_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def _database(self) -> Database:
        if self._db is None:
            db = Database(self._url, min_size=0, max_size=2)
            await db.open(wait=False)
            self._db = db
        return self._db

    async def _read(self, tenant_id: str) -> TenantNotifications | None:
        db = await self._database()
        async with db.connection() as conn:
            row = await tenant_records.get(conn, tenant_id)
            if row is None:
                return None
            secrets = {name: await self._secret(conn, tenant_id, name) for name in SECRET_NAMES}
        try:
            return TenantNotifications.from_stored(row["settings"] or {}, {k: v for k, v in secrets.items() if v})
        except ValidationError as exc:  # stored before a rule tightened: the installation's settings serve
            log.error("tenant_settings.invalid", tenant=tenant_id, fields=sorted({str(e["loc"][0]) for e in
                                                                                 exc.errors()}))
            return None

    async def _secret(self, conn: Any, tenant_id: str, name: str) -> str | None:
        if not self._keyring.configured:
            return None
        try:
            value = await tenant_secrets.get(conn, self._keyring, tenant_id, name)
        except SecretKeyError as exc:  # a master key PAYRISK_SECRET_KEY no longer lists: say which, never what
            log.error("tenant_settings.secret_unreadable", tenant=tenant_id, secret=name, error=str(exc))
            return None
        return value if isinstance(value, str) else None
