"""The transactional outbox: side effects written with the decision, sent after commit.

One claimer for every topic (`email`, `alert`, `provider`): rows are leased (`claimed_by`, `claimed_at`) on the
caller's clock — the real one, or the simulated one in tests — for `lease`; a worker that dies mid-send leaves its
rows to be claimed again when the lease ends, which is the one way a side effect can go out twice (the provider's
idempotency key and the notifications ledger absorb it). Claiming is serialized by an advisory lock and an email is
not claimed while another email to the same customer is leased, so two workers never both pass a frequency cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from store.db import Conn, Database
from store.jsonb import dumps

DEFAULT_LEASE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    outbox_id: int
    tenant_id: str
    topic: str
    idempotency_key: str
    stream_id: str | None
    payload: dict[str, Any]
    attempts: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


@dataclass(frozen=True, slots=True)
class NewSideEffect:
    tenant_id: str
    topic: str
    idempotency_key: str
    payload: dict[str, Any]
    stream_id: str | None
    available_at: datetime


async def enqueue_many(conn: Conn, rows: Sequence[NewSideEffect]) -> None:
    """`enqueue` for a batch in one statement; a row whose idempotency key exists already is not added."""
    if not rows:
        return
    await conn.execute(
        "INSERT INTO outbox (tenant_id, topic, idempotency_key, stream_id, payload, available_at)"
        " SELECT te, tp, k, s, p::jsonb, a FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[],"
        " %b::timestamptz[]) AS r(te, tp, k, s, p, a)"
        " ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
        ([r.tenant_id for r in rows], [r.topic for r in rows], [r.idempotency_key for r in rows],
         [r.stream_id for r in rows], [dumps(r.payload) for r in rows], [r.available_at for r in rows]))


#: The rows to lease, oldest first. An email waits while another one of its customer's is leased and unsent (one
#: at a time per customer). Those customers are found once per claim (a small set: the leases in flight), not once
#: per candidate row: a check per candidate read every pending email for each, 400 million rows for a claim of 50
#: with 20,000 emails due on a table without statistics (tests/integration/test_query_plans.py). The leased rows
#: are then updated by id.
_CLAIM = """
WITH busy AS MATERIALIZED (
    SELECT DISTINCT b.tenant_id, b.payload->>'customer_id' AS customer_id FROM outbox b
    WHERE b.topic = 'email' AND b.sent_at IS NULL AND b.dead_at IS NULL AND b.claimed_at >= %(stale)s
      AND b.payload->>'customer_id' IS NOT NULL)
UPDATE outbox o SET claimed_by = %(worker)s, claimed_at = %(now)s
WHERE o.outbox_id = ANY(ARRAY(
    SELECT c.outbox_id FROM outbox c
    WHERE c.sent_at IS NULL AND c.dead_at IS NULL AND c.available_at <= %(now)s
      AND c.topic = ANY(%(topics)s)
      AND (c.claimed_at IS NULL OR c.claimed_at < %(stale)s)
      AND (c.topic <> 'email' OR c.payload->>'customer_id' IS NULL
           OR (c.tenant_id, c.payload->>'customer_id') NOT IN (SELECT tenant_id, customer_id FROM busy))
    ORDER BY c.available_at, c.outbox_id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED))
RETURNING o.outbox_id, o.tenant_id, o.topic, o.idempotency_key, o.stream_id, o.payload, o.attempts
"""


async def claim(db: Database, now: datetime, worker: str, topics: tuple[str, ...], *, limit: int = 50,
                lease: timedelta = DEFAULT_LEASE) -> list[OutboxRow]:
    """Lease up to `limit` rows of `topics` due at `now` to `worker` (one short transaction), oldest first."""
    params = {"worker": worker, "now": now, "stale": now - lease, "limit": limit, "topics": list(topics)}
    async with db.transaction() as conn:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('payrisk:outbox-claim'))")
        rows = await (await conn.execute(_CLAIM, params)).fetchall()
    return sorted((OutboxRow(**row) for row in rows), key=lambda r: r.outbox_id)


async def release(db: Database, outbox_ids: list[int], worker: str) -> None:
    """Give back rows `worker` claimed but could not deliver (the next pass claims them again)."""
    async with db.connection() as conn:
        await conn.execute("UPDATE outbox SET claimed_by = NULL, claimed_at = NULL"
                           " WHERE outbox_id = ANY(%s) AND claimed_by = %s AND sent_at IS NULL", (outbox_ids, worker))


async def release_held(db: Database, worker: str) -> int:
    """Give back every unsettled row `worker` holds: what an earlier incarnation of the same worker claimed and
    died with. Without this they wait for the lease's end (`DEFAULT_LEASE`); returns how many were released."""
    async with db.connection() as conn:
        # the predicate of the partial index `outbox_leased`: only the rows in flight are read, never the table
        cur = await conn.execute("UPDATE outbox SET claimed_by = NULL, claimed_at = NULL"
                                 " WHERE sent_at IS NULL AND dead_at IS NULL AND claimed_at IS NOT NULL"
                                 " AND claimed_by = %s", (worker,))
    return int(cur.rowcount or 0)


async def mark_sent(conn: Conn, outbox_id: int, now: datetime, note: str | None = None) -> None:
    """Done (`note`: why it counts as done without reaching anyone, e.g. no alert channel)."""
    await conn.execute("UPDATE outbox SET sent_at = %s, claimed_by = NULL, claimed_at = NULL, last_error = %s"
                       " WHERE outbox_id = %s AND sent_at IS NULL", (now, note, outbox_id))


# A row is settled by its id: `coalesce(sent_at, dead_at) IS NULL` says "not settled" in a form that the partial
# index `outbox_pending` does not match, so a planner without statistics never scans every pending row for it.
async def reschedule(conn: Conn, outbox_id: int, worker: str, retry_at: datetime, error: str | None,
                     *, failed: bool = True) -> None:
    """Try again at `retry_at`; `failed` counts an attempt (a deferral for quiet hours or a cap does not)."""
    await conn.execute(
        "UPDATE outbox SET available_at = %s, attempts = attempts + %s, last_error = %s, claimed_by = NULL,"
        " claimed_at = NULL WHERE outbox_id = %s AND claimed_by = %s AND coalesce(sent_at, dead_at) IS NULL",
        (retry_at, 1 if failed else 0, error, outbox_id, worker))


async def bury(conn: Conn, outbox_id: int, worker: str, now: datetime, error: str | None) -> bool:
    """Give up on it (dead letter); False when it was not ours to bury (already settled, or re-leased)."""
    cur = await conn.execute(
        "UPDATE outbox SET dead_at = %s, attempts = attempts + 1, last_error = %s, claimed_by = NULL,"
        " claimed_at = NULL WHERE outbox_id = %s AND claimed_by = %s AND coalesce(sent_at, dead_at) IS NULL",
        (now, error, outbox_id, worker))
    return cur.rowcount == 1
