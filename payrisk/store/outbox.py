"""The transactional outbox: side effects written with the decision, sent after commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from payrisk.store.db import Conn


@dataclass(frozen=True, slots=True)
class OutboxRow:
    outbox_id: int
    tenant_id: str
    topic: str
    idempotency_key: str
    stream_id: str | None
    payload: dict[str, Any]
    attempts: int


async def enqueue(conn: Conn, tenant_id: str, topic: str, idempotency_key: str, payload: dict[str, Any],
                  *, stream_id: str | None = None, available_at: datetime | None = None) -> bool:
    """Add a side effect; False when one with the same idempotency key already exists (sent once)."""
    cur = await conn.execute(
        "INSERT INTO outbox (tenant_id, topic, idempotency_key, stream_id, payload, available_at)"
        " VALUES (%s, %s, %s, %s, %s, coalesce(%s, now()))"
        " ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
        (tenant_id, topic, idempotency_key, stream_id, Jsonb(payload), available_at),
    )
    return cur.rowcount == 1


async def claim(conn: Conn, now: datetime, worker: str, *, topics: tuple[str, ...] | None = None,
                limit: int = 50, lease_seconds: float = 60.0) -> list[OutboxRow]:
    """Claim due rows; each is claimed by exactly one concurrent claimer until its lease ends."""
    cur = await conn.execute(
        "UPDATE outbox SET claimed_by = %s, claimed_at = now() WHERE outbox_id IN ("
        "  SELECT outbox_id FROM outbox WHERE sent_at IS NULL AND dead_at IS NULL AND available_at <= %s"
        "  AND (%s::text[] IS NULL OR topic = ANY(%s::text[]))"
        "  AND (claimed_at IS NULL OR claimed_at < now() - make_interval(secs => %s))"
        "  ORDER BY available_at, outbox_id LIMIT %s FOR UPDATE SKIP LOCKED)"
        " RETURNING outbox_id, tenant_id, topic, idempotency_key, stream_id, payload, attempts",
        (worker, now, list(topics) if topics else None, list(topics) if topics else None, lease_seconds, limit),
    )
    return sorted((OutboxRow(**row) for row in await cur.fetchall()), key=lambda r: r.outbox_id)


async def mark_sent(conn: Conn, outbox_id: int) -> None:
    await conn.execute("UPDATE outbox SET sent_at = now(), claimed_by = NULL WHERE outbox_id = %s", (outbox_id,))
