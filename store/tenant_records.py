"""Tenants as first-class rows: create, read, list, update (the secrets live in tenant_secrets)."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from store.db import Conn

_COLUMNS = "tenant_id, name, retry_mode, settings - 'stripe_webhook_secrets' AS settings, created_at"


async def create(conn: Conn, tenant: str, name: str, retry_mode: str = "own",
                 settings: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The new tenant's row, or None when the id is taken."""
    cur = await conn.execute(
        f"INSERT INTO tenants (tenant_id, name, retry_mode, settings) VALUES (%s, %s, %s, %s)"
        f" ON CONFLICT (tenant_id) DO NOTHING RETURNING {_COLUMNS}", (tenant, name, retry_mode, Jsonb(settings or {})))
    return await cur.fetchone()


async def get(conn: Conn, tenant: str, *, for_update: bool = False) -> dict[str, Any] | None:
    lock = " FOR UPDATE" if for_update else ""
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM tenants WHERE tenant_id = %s{lock}", (tenant,))
    return await cur.fetchone()


async def list_all(conn: Conn, only: str | None = None) -> list[dict[str, Any]]:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM tenants WHERE %(t)s::text IS NULL OR tenant_id = %(t)s"
                             " ORDER BY tenant_id", {"t": only})
    return await cur.fetchall()


async def update(conn: Conn, tenant: str, *, name: str | None, retry_mode: str | None,
                 settings: dict[str, Any]) -> dict[str, Any] | None:
    """Apply a partial change; `settings` keys replace those stored (a null value removes the key)."""
    kept = {k: v for k, v in settings.items() if v is not None}
    dropped = [k for k, v in settings.items() if v is None]
    cur = await conn.execute(
        f"UPDATE tenants SET name = coalesce(%s, name), retry_mode = coalesce(%s, retry_mode),"
        f" settings = (settings || %s) - %s::text[] WHERE tenant_id = %s RETURNING {_COLUMNS}",
        (name, retry_mode, Jsonb(kept), dropped, tenant))
    return await cur.fetchone()


async def routing(conn: Conn, tenant: str) -> dict[str, Any] | None:
    """What the webhook edge needs: `{settings, redis_namespace}` (settings with any legacy plain secrets)."""
    cur = await conn.execute("SELECT settings, redis_namespace FROM tenants WHERE tenant_id = %s", (tenant,))
    return await cur.fetchone()


async def retry_mode(conn: Conn, tenant: str) -> str | None:
    cur = await conn.execute("SELECT retry_mode FROM tenants WHERE tenant_id = %s", (tenant,))
    row = await cur.fetchone()
    return str(row["retry_mode"]) if row else None
