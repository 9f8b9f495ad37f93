"""The `notifications` ledger: every email and alert that went out (or was recorded as having no channel), once per
idempotency key. The frequency caps read it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from store.db import Conn, Database


async def record(conn: Conn, tenant_id: str, key: str, *, customer_id: str | None, channel: str,
                 template: str | None, recipient: str | None, now: datetime, detail: dict[str, Any],
                 status: str) -> None:
    """One line per idempotency key (a repeat writes nothing)."""
    await conn.execute(
        "INSERT INTO notifications (tenant_id, idempotency_key, customer_id, channel, template, recipient, sent_at,"
        " detail, status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (tenant_id, key, customer_id, channel, template, recipient, now, Jsonb(detail), status))


async def recent_emails(db: Database, customers: set[tuple[str, str]], since: datetime
                        ) -> dict[tuple[str, str], list[datetime]]:
    """When each (tenant, customer) was emailed after `since`."""
    recent: dict[tuple[str, str], list[datetime]] = {}
    async with db.connection() as conn:
        for tenant_id, customer_id in customers:
            cur = await conn.execute("SELECT sent_at FROM notifications WHERE tenant_id = %s AND customer_id = %s"
                                     " AND channel = 'email' AND sent_at > %s", (tenant_id, customer_id, since))
            recent[(tenant_id, customer_id)] = [row["sent_at"] for row in await cur.fetchall()]
    return recent
