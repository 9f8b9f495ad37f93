"""Principals for tests: API keys made by the real key store (hashed, scoped), as a test would get them from
`payrisk keys create`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, TypeVar

import psycopg

from store import Database
from store import keys as key_store

T = TypeVar("T")


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on its own loop in a helper thread (works inside and outside a loop)."""
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(make()))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def ensure_tenant(database_url: str, tenant: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING", (tenant, tenant))


def make_key(database_url: str, tenant: str = "default", scopes: tuple[str, ...] = ("admin",), *,
             platform: bool = False, expires_at: datetime | None = None) -> str:
    """A new API key of `tenant` (created if missing) with `scopes`; returns the key itself."""
    ensure_tenant(database_url, tenant)

    async def create() -> str:
        db = Database(database_url, max_size=1)
        await db.open()
        try:
            async with db.connection() as conn:
                _, key = await key_store.create(conn, tenant, list(scopes), created_by="test", platform=platform,
                                                expires_at=expires_at)
        finally:
            await db.close()
        return key

    return run_async(create)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
