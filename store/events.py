"""The append-only per-customer event log with optimistic concurrency on (stream, version)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from store.db import Conn
from store.errors import ConcurrencyConflict
from store.jsonb import dumps


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


@dataclass(frozen=True, slots=True)
class Append:
    """One stream's new events after `expected_version` (a batch appends several streams at once)."""

    tenant_id: str
    stream_id: str
    expected_version: int
    events: Sequence[NewEvent]


_VERSIONS = (
    "SELECT s.tenant_id, s.stream_id, (SELECT coalesce(max(e.version), 0) FROM events e"
    " WHERE e.tenant_id = s.tenant_id AND e.stream_id = s.stream_id) AS v"
    " FROM unnest(%b::text[], %b::text[]) AS s(tenant_id, stream_id)"
)
_INSERT_MANY = (
    "INSERT INTO events (tenant_id, stream_id, version, event_type, schema_version, payload)"
    " SELECT t, s, v, et, sv, p::jsonb FROM unnest(%b::text[], %b::text[], %b::int4[], %b::text[], %b::int2[],"
    " %b::text[]) AS r(t, s, v, et, sv, p)"
)


async def append_many(conn: Conn, appends: Sequence[Append]) -> None:
    """Append several streams' events in two statements (the version check, one multi-row INSERT).

    Raises ConcurrencyConflict when any stream is not at its expected version; the primary key on
    (tenant, stream, version) still fails the whole transaction on a race between the check and the insert.
    """
    appends = [a for a in appends if a.events]
    if not appends:
        return
    found = await conn.execute(_VERSIONS, ([a.tenant_id for a in appends], [a.stream_id for a in appends]))
    current = {(r["tenant_id"], r["stream_id"]): int(r["v"]) for r in await found.fetchall()}
    for a in appends:
        if current.get((a.tenant_id, a.stream_id), 0) != a.expected_version:
            raise ConcurrencyConflict(f"stream {a.stream_id} is at version {current.get((a.tenant_id, a.stream_id))},"
                                      f" expected {a.expected_version}")
    rows = [(a.tenant_id, a.stream_id, a.expected_version + i, e.event_type, e.schema_version, dumps(e.payload))
            for a in appends for i, e in enumerate(a.events, start=1)]
    await conn.execute(_INSERT_MANY, [list(column) for column in zip(*rows, strict=True)])


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


async def load_many(conn: Conn, streams: Sequence[tuple[str, str, int]]) -> dict[tuple[str, str], list[RecordedEvent]]:
    """Every event after each `(tenant, stream, after_version)`, in version order, per (tenant, stream); one
    statement (activating a batch's customers)."""
    if not streams:
        return {}
    cur = await conn.execute(
        "SELECT e.tenant_id, e.stream_id, e.version, e.event_type, e.schema_version, e.payload, e.recorded_at,"
        " e.position FROM unnest(%b::text[], %b::text[], %b::int4[]) AS s(tenant_id, stream_id, after)"
        " JOIN events e ON e.tenant_id = s.tenant_id AND e.stream_id = s.stream_id AND e.version > s.after"
        " ORDER BY e.tenant_id, e.stream_id, e.version", [list(c) for c in zip(*streams, strict=True)])
    found: dict[tuple[str, str], list[RecordedEvent]] = {}
    for row in await cur.fetchall():
        found.setdefault((row["tenant_id"], row["stream_id"]), []).append(RecordedEvent(**row))
    return found


async def timeline(conn: Conn, tenant_id: str, stream_id: str) -> list[dict[str, Any]]:
    """The stream's events as timeline items (`kind`, `at`, `type`, `ref` = version, `payload`)."""
    cur = await conn.execute(
        "SELECT 'event' AS kind, recorded_at AS at, event_type AS type, version AS ref, payload FROM events"
        " WHERE tenant_id = %s AND stream_id = %s ORDER BY version", (tenant_id, stream_id))
    return list(await cur.fetchall())
