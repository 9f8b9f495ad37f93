"""The operator audit trail: who changed what, when, in which tenant, with the state before and after."""

from __future__ import annotations

from typing import Any

import orjson
from psycopg.types.json import Jsonb

from store.db import Conn

_COLUMNS = "audit_id, tenant_id, at, principal, via, action, target, cross_tenant, before, after"


async def record(conn: Conn, *, tenant: str, principal: str, via: str, action: str, target: str | None = None,
                 before: Any = None, after: Any = None, cross_tenant: bool = False) -> None:
    """Append one audit event. `before`/`after` must already be masked: this table is read by admins."""
    await conn.execute(
        "INSERT INTO audit_events (tenant_id, principal, via, action, target, cross_tenant, before, after)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (tenant, principal, via, action, target, cross_tenant, _json(before), _json(after)))


def _json(value: Any) -> Jsonb | None:
    """JSONB of a value that may hold times (rows as read): dumped as ISO text."""
    return None if value is None else Jsonb(value, dumps=lambda v: orjson.dumps(v, default=str).decode())


async def list_events(conn: Conn, tenant: str | None, *, after: int = 0, limit: int = 100,
                      action: str | None = None) -> list[dict[str, Any]]:
    """Audit events of `tenant` (all tenants for None) after `after`, oldest first."""
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM audit_events WHERE (%(t)s::text IS NULL OR tenant_id = %(t)s)"
        " AND (%(a)s::text IS NULL OR action = %(a)s) AND audit_id > %(after)s ORDER BY audit_id LIMIT %(limit)s",
        {"t": tenant, "a": action, "after": after, "limit": limit})
    return await cur.fetchall()
