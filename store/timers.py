"""Durable timers (invariant I4): one pending timer per (stream, key), claimed with SKIP LOCKED.

`due_at` is on the injected clock (simulated or real); claim leases use the database's wall clock, so a
claimer that dies loses its lease after `lease_seconds` whatever the simulated time does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from store.db import Conn
from store.jsonb import dumps


@dataclass(frozen=True, slots=True)
class Timer:
    timer_id: int
    tenant_id: str
    stream_id: str
    timer_key: str
    due_at: datetime
    payload: dict[str, Any]


async def schedule(conn: Conn, tenant_id: str, stream_id: str, timer_key: str, due_at: datetime,
                   payload: dict[str, Any] | None = None) -> int:
    """Set the stream's pending timer `timer_key` (replacing a pending one with the same key)."""
    await cancel(conn, tenant_id, stream_id, timer_key)
    cur = await conn.execute(
        "INSERT INTO timers (tenant_id, stream_id, timer_key, due_at, payload) VALUES (%s, %s, %s, %s, %s)"
        " RETURNING timer_id",
        (tenant_id, stream_id, timer_key, due_at, Jsonb(payload or {})),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["timer_id"])


async def cancel(conn: Conn, tenant_id: str, stream_id: str, timer_key: str) -> None:
    await conn.execute(
        "UPDATE timers SET cancelled_at = now() WHERE tenant_id = %s AND stream_id = %s AND timer_key = %s"
        " AND fired_at IS NULL AND cancelled_at IS NULL",
        (tenant_id, stream_id, timer_key),
    )


@dataclass(frozen=True, slots=True)
class TimerSet:
    """A stream's timer `timer_key` after a batch: pending at `due_at` with `payload`, or cancelled (`due_at` None)."""

    tenant_id: str
    stream_id: str
    timer_key: str
    due_at: datetime | None
    payload: dict[str, Any]


#: Each key's pending timer found through `timers_one_pending`, one index lookup per key (the LIMIT keeps the
#: lookup a nested loop), then updated by id. Written so that no plan can read every pending timer, whatever the
#: table's statistics say: a join (or a guard on `fired_at IS NULL AND cancelled_at IS NULL`) lets a planner without
#: statistics hash all pending rows instead (tests/integration/test_query_plans.py). Never prepared: the ids come
#: from the statement itself, so a plan cached while the table was small scans it whole after it grew.
_CANCEL_MANY = (
    "UPDATE timers SET cancelled_at = now() WHERE timer_id = ANY(ARRAY("
    " SELECT p.timer_id FROM unnest(%b::text[], %b::text[], %b::text[]) AS c(te, s, k) CROSS JOIN LATERAL ("
    "  SELECT timer_id FROM timers WHERE tenant_id = c.te AND stream_id = c.s AND timer_key = c.k"
    "  AND fired_at IS NULL AND cancelled_at IS NULL LIMIT 1) AS p))"
    " AND coalesce(fired_at, cancelled_at) IS NULL")


async def set_many(conn: Conn, timers: Sequence[TimerSet]) -> None:
    """Apply a batch's final timer settings in two statements: every named pending timer is cancelled, then the
    scheduled ones inserted — what `schedule` / `cancel` one by one leave pending, without the superseded rows."""
    if not timers:
        return
    await conn.execute(_CANCEL_MANY, ([t.tenant_id for t in timers], [t.stream_id for t in timers],
                                      [t.timer_key for t in timers]), prepare=False)
    due = [t for t in timers if t.due_at is not None]
    if due:
        await conn.execute(
            "INSERT INTO timers (tenant_id, stream_id, timer_key, due_at, payload)"
            " SELECT te, s, k, d, p::jsonb FROM unnest(%b::text[], %b::text[], %b::text[], %b::timestamptz[],"
            " %b::text[]) AS r(te, s, k, d, p)",
            ([t.tenant_id for t in due], [t.stream_id for t in due], [t.timer_key for t in due],
             [t.due_at for t in due], [dumps(t.payload) for t in due]))


async def claim_due(conn: Conn, now: datetime, worker: str, limit: int = 100,
                    lease_seconds: float = 60.0) -> list[Timer]:
    """Claim up to `limit` timers due at `now`; each is claimed by exactly one concurrent claimer."""
    cur = await conn.execute(
        "UPDATE timers SET claimed_by = %s, claimed_at = now() WHERE timer_id IN ("
        "  SELECT timer_id FROM timers WHERE fired_at IS NULL AND cancelled_at IS NULL AND due_at <= %s"
        "  AND (claimed_at IS NULL OR claimed_at < now() - make_interval(secs => %s))"
        "  ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED)"
        " RETURNING timer_id, tenant_id, stream_id, timer_key, due_at, payload",
        (worker, now, lease_seconds, limit),
    )
    rows = await cur.fetchall()
    return sorted((Timer(**row) for row in rows), key=lambda t: (t.due_at, t.timer_id))


async def mark_fired(conn: Conn, timer_id: int) -> bool:
    """Mark a timer fired; False when it was already fired or cancelled (the firing is then a no-op)."""
    return timer_id in await mark_fired_many(conn, [timer_id])


async def mark_fired_many(conn: Conn, timer_ids: Sequence[int]) -> set[int]:
    """`mark_fired` for a batch in one statement; the ids that were pending (the others fire as no-ops). By id
    only, with the guard in a form no partial index matches, and never prepared (see `_CANCEL_MANY`)."""
    if not timer_ids:
        return set()
    cur = await conn.execute(
        "UPDATE timers SET fired_at = now() WHERE timer_id = ANY(%s) AND coalesce(fired_at, cancelled_at) IS NULL"
        " RETURNING timer_id", (list(timer_ids),), prepare=False)
    return {int(row["timer_id"]) for row in await cur.fetchall()}


async def release(conn: Conn, timer_ids: list[int], worker: str) -> None:
    """Give back claims `worker` holds on timers it could not deliver, so the next pass claims them at once."""
    await conn.execute(
        "UPDATE timers SET claimed_by = NULL, claimed_at = NULL WHERE timer_id = ANY(%s) AND claimed_by = %s"
        " AND fired_at IS NULL", (timer_ids, worker))


async def release_held(conn: Conn, worker: str) -> int:
    """Give back every claim `worker` holds on unfired timers: what an earlier incarnation of the same scheduler
    claimed and died with (else they wait for the lease to run out). Returns how many were released."""
    cur = await conn.execute(
        "UPDATE timers SET claimed_by = NULL, claimed_at = NULL"
        " WHERE fired_at IS NULL AND cancelled_at IS NULL AND claimed_by = %s", (worker,))  # pending timers' indexes
    return int(cur.rowcount or 0)
