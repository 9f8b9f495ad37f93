"""The append-only per-customer event log with optimistic concurrency on (stream, version)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from store.db import Conn
from store.errors import ConcurrencyConflict


@dataclass(frozen=True, slots=True)
class NewEvent:
    event_type: str
    payload: dict[str, Any]
    schema_version: int = 1


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    tenant_id: str
    stream_id: str
    version: int
    event_type: str
    schema_version: int
    payload: dict[str, Any]
    recorded_at: datetime
    position: int


async def append(conn: Conn, tenant_id: str, stream_id: str, expected_version: int,
                 events: list[NewEvent]) -> int:
    """Append after `expected_version`; return the new version.

    Raises ConcurrencyConflict when another writer appended first. Run inside the decision's transaction:
    the primary key on (tenant, stream, version) makes a lost race fail the whole transaction.
    """
    if not events:
        return expected_version
    current = await stream_version(conn, tenant_id, stream_id)
    if current != expected_version:
        raise ConcurrencyConflict(f"stream {stream_id} is at version {current}, expected {expected_version}")
    rows = [
        (tenant_id, stream_id, expected_version + i + 1, e.event_type, e.schema_version, Jsonb(e.payload))
        for i, e in enumerate(events)
    ]
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO events (tenant_id, stream_id, version, event_type, schema_version, payload)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            rows,
        )
    return expected_version + len(events)


async def stream_version(conn: Conn, tenant_id: str, stream_id: str) -> int:
    cur = await conn.execute(
        "SELECT coalesce(max(version), 0) AS v FROM events WHERE tenant_id = %s AND stream_id = %s",
        (tenant_id, stream_id),
    )
    row = await cur.fetchone()
    return int(row["v"]) if row else 0


async def load(conn: Conn, tenant_id: str, stream_id: str, after_version: int = 0) -> list[RecordedEvent]:
    """Every event of the stream after `after_version`, in version order."""
    cur = await conn.execute(
        "SELECT tenant_id, stream_id, version, event_type, schema_version, payload, recorded_at, position"
        " FROM events WHERE tenant_id = %s AND stream_id = %s AND version > %s ORDER BY version",
        (tenant_id, stream_id, after_version),
    )
    return [RecordedEvent(**row) for row in await cur.fetchall()]


async def timeline(conn: Conn, tenant_id: str, stream_id: str) -> list[dict[str, Any]]:
    """The stream's events as timeline items (`kind`, `at`, `type`, `ref` = version, `payload`)."""
    cur = await conn.execute(
        "SELECT 'event' AS kind, recorded_at AS at, event_type AS type, version AS ref, payload FROM events"
        " WHERE tenant_id = %s AND stream_id = %s ORDER BY version", (tenant_id, stream_id))
    return list(await cur.fetchall())
