"""The `deliveries` table: every verified webhook body as received, and where it is in its life.

`received` (stored, answered 2xx) → `dispatched` (handed to the customer's home) → `applied` (its decisions are in
the checkpoint), or `ignored` (nothing for us in it) / `quarantined` (verified but unusable, with the reason; a
replay after a fix sends it back to `received`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from store.db import Conn, Database
from store.jsonb import dumps


class DeliveryStatus(StrEnum):
    RECEIVED = "received"
    DISPATCHED = "dispatched"
    APPLIED = "applied"
    IGNORED = "ignored"
    QUARANTINED = "quarantined"


#: "Not final yet" (the CHECK constraint leaves `received` and `dispatched`) for a lookup by id. Not written
#: `status IN ('received', 'dispatched')`, which the partial index `deliveries_pending` matches: a planner without
#: statistics would read every pending delivery for it (tests/integration/test_query_plans.py). The statements that
#: update the rows of an id list they select themselves are never prepared: a plan cached while the table was small
#: (a fresh installation) scans the whole table for those ids after it grew.
_OPEN = "status <> ALL ('{applied,ignored,quarantined}'::text[])"
#: statuses after which a delivery is never applied again
FINAL = (DeliveryStatus.APPLIED, DeliveryStatus.IGNORED, DeliveryStatus.QUARANTINED)
#: statuses the sweeper re-sends
WAITING = (DeliveryStatus.RECEIVED, DeliveryStatus.DISPATCHED)
#: a delivery its home failed to apply this many times is quarantined with the last error (migration 0006)
MAX_APPLY_FAILURES = 3
_SWEEP_LOCK = 7_391_001  # advisory lock id: one sweeper at a time across gateway processes


@dataclass(frozen=True, slots=True)
class NewDelivery:
    tenant_id: str
    provider: str
    provider_event_id: str
    event_type: str
    customer_id: str | None
    body: bytes
    headers: dict[str, str]
    status: DeliveryStatus
    status_reason: str | None


_INSERT = (
    "INSERT INTO deliveries (tenant_id, provider, provider_event_id, event_type, customer_id, body, headers,"
    " status, status_reason) SELECT t, p, e, et, c, b, h::jsonb, st, r FROM unnest(%b::text[], %b::text[], %b::text[],"
    " %b::text[], %b::text[], %b::bytea[], %b::text[], %b::text[], %b::text[]) AS d(t, p, e, et, c, b, h, st, r)"
    " ON CONFLICT (tenant_id, provider, provider_event_id) DO NOTHING"
    " RETURNING tenant_id, provider, provider_event_id, delivery_id"
)


async def insert_many(db: Database, deliveries: Sequence[NewDelivery]) -> list[int | None]:
    """Store deliveries in one transaction and one statement; each one's id, or None where (tenant, provider,
    event id) is stored already (the unique constraint decides duplicates, I2) — including a second copy within
    this batch: only the first of equal keys gets the id."""
    columns = ([d.tenant_id for d in deliveries], [d.provider for d in deliveries],
               [d.provider_event_id for d in deliveries], [d.event_type for d in deliveries],
               [d.customer_id for d in deliveries], [d.body for d in deliveries],
               [dumps(d.headers) for d in deliveries], [str(d.status) for d in deliveries],
               [d.status_reason for d in deliveries])
    async with db.transaction() as conn:
        cur = await conn.execute(_INSERT, columns)
        stored = {(r["tenant_id"], r["provider"], r["provider_event_id"]): int(r["delivery_id"])
                  for r in await cur.fetchall()}
    return [stored.pop((d.tenant_id, d.provider, d.provider_event_id), None) for d in deliveries]


async def mark_dispatched(db: Database, delivery_ids: list[int]) -> None:
    """Handed off. SKIP LOCKED: a row a shard is applying right now is left alone (it becomes `applied` anyway),
    so this status write never waits on, or deadlocks with, a shard's transaction."""
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE deliveries SET status = 'dispatched', dispatched_at = now() WHERE delivery_id = ANY(ARRAY("
            " SELECT delivery_id FROM deliveries WHERE delivery_id = ANY(%s) AND " + _OPEN +
            " FOR UPDATE SKIP LOCKED))", (delivery_ids,), prepare=False)


async def record_apply_failure(db: Database, delivery_id: int, error: str) -> None:
    """Its home could not apply it: counted; after `MAX_APPLY_FAILURES` it is quarantined with the last error."""
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE deliveries SET apply_failures = apply_failures + 1, last_error = %(error)s,"
            " status = CASE WHEN apply_failures + 1 >= %(max)s THEN 'quarantined' ELSE status END,"
            " status_reason = CASE WHEN apply_failures + 1 >= %(max)s"
            "   THEN 'not applied after ' || (apply_failures + 1) || ' tries: ' || %(error)s ELSE status_reason END"
            " WHERE delivery_id = %(id)s AND " + _OPEN,
            {"id": delivery_id, "error": error, "max": MAX_APPLY_FAILURES})


async def try_sweep_lock(conn: Conn) -> bool:
    """The installation-wide sweeper lock (session level, on this connection); False when another holds it."""
    row = await (await conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (_SWEEP_LOCK,))).fetchone()
    return bool(row and row["ok"])


async def release_sweep_lock(conn: Conn) -> None:
    await conn.execute("SELECT pg_advisory_unlock(%s)", (_SWEEP_LOCK,))


async def waiting(conn: Conn, grace_seconds: float, limit: int, redispatch_after_seconds: float
                  ) -> list[dict[str, Any]]:
    """Stored but not applied: never handed off after `grace_seconds`, or handed off and still not applied after
    `redispatch_after_seconds`. Least recently tried first, so nothing starves. Two index-ordered scans
    (migration 0003), never a sort of the whole backlog."""
    cur = await conn.execute(
        "(SELECT delivery_id, tenant_id, provider, body, received_at AS since FROM deliveries"
        "  WHERE status = 'received' AND received_at < now() - make_interval(secs => %s)"
        "  ORDER BY received_at LIMIT %s)"
        " UNION ALL"
        " (SELECT delivery_id, tenant_id, provider, body, dispatched_at AS since FROM deliveries"
        "  WHERE status = 'dispatched' AND dispatched_at < now() - make_interval(secs => %s)"
        "  ORDER BY dispatched_at LIMIT %s)"
        " ORDER BY since LIMIT %s",
        (grace_seconds, limit, max(grace_seconds, redispatch_after_seconds), limit, limit))
    return list(await cur.fetchall())


async def set_status(conn: Conn, delivery_id: int, status: DeliveryStatus, reason: str | None = None,
                     customer_id: str | None = None, *, replayed: bool = False) -> None:
    """Settle a delivery the sweeper or a replay found unusable (`quarantined` with the reason), empty
    (`ignored`), or usable again (`received`, with the customer it now names). `replayed`: an operator sent it
    back, so its count of failed applies starts again."""
    await conn.execute(
        "UPDATE deliveries SET status = %s, status_reason = %s, customer_id = coalesce(%s, customer_id),"
        " apply_failures = CASE WHEN %s THEN 0 ELSE apply_failures END WHERE delivery_id = %s",
        (str(status), reason, customer_id, replayed, delivery_id))


async def quarantined_for_update(conn: Conn, tenant_id: str, delivery_id: int | None = None
                                 ) -> list[dict[str, Any]]:
    """The tenant's quarantined deliveries (or the one given), locked for a replay in this transaction."""
    cur = await conn.execute(
        "SELECT delivery_id, provider, body FROM deliveries WHERE tenant_id = %s AND status = 'quarantined'"
        " AND (%s::bigint IS NULL OR delivery_id = %s) ORDER BY delivery_id FOR UPDATE",
        (tenant_id, delivery_id, delivery_id))
    return list(await cur.fetchall())


async def lock_for_apply(conn: Conn, delivery_id: int) -> DeliveryStatus | None:
    """Lock the delivery row for this transaction; its status (None when it does not exist)."""
    cur = await conn.execute("SELECT status FROM deliveries WHERE delivery_id = %s FOR UPDATE", (delivery_id,))
    row = await cur.fetchone()
    return DeliveryStatus(row["status"]) if row else None


async def claim_for_apply(conn: Conn, delivery_ids: Sequence[int]) -> dict[int, float]:
    """Mark applied, in this transaction, the deliveries among `delivery_ids` not yet final (one statement for a
    batch); returns each claimed one's seconds from receipt (the webhook → checkpoint metric).

    At most once: rows are locked in id order and their status re-checked once a lock is granted, so a delivery
    another transaction is applying is claimed here only if that one rolls back. The caller decides the claimed
    deliveries in the same transaction; a rollback un-claims them."""
    if not delivery_ids:
        return {}
    cur = await conn.execute(
        "UPDATE deliveries SET status = 'applied', applied_at = now() WHERE delivery_id = ANY(ARRAY("
        " SELECT delivery_id FROM deliveries WHERE delivery_id = ANY(%s) AND " + _OPEN +
        " ORDER BY delivery_id FOR UPDATE))"
        " RETURNING delivery_id, extract(epoch FROM clock_timestamp() - received_at)::float8 AS waited",
        (list(delivery_ids),), prepare=False)
    return {int(r["delivery_id"]): float(r["waited"]) for r in await cur.fetchall()}


async def mark_applied(conn: Conn, delivery_id: int) -> float | None:
    """Applied in this transaction; the seconds from receipt to now (for the webhook → checkpoint metric)."""
    cur = await conn.execute(
        "UPDATE deliveries SET status = 'applied', applied_at = now() WHERE delivery_id = %s"
        " RETURNING extract(epoch FROM clock_timestamp() - received_at)::float8 AS waited", (delivery_id,))
    row = await cur.fetchone()
    return row["waited"] if row else None


_COLUMNS = ("delivery_id, tenant_id, provider, provider_event_id, event_type, customer_id, received_at, status,"
            " status_reason, dispatched_at, applied_at")


async def page(conn: Conn, tenant_id: str, status: DeliveryStatus | None, after: int, limit: int
               ) -> list[dict[str, Any]]:
    """The tenant's deliveries by id after `after` (keyset pagination), optionally of one status."""
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM deliveries WHERE tenant_id = %s AND (%s::text IS NULL OR status = %s)"
        " AND delivery_id > %s ORDER BY delivery_id LIMIT %s",
        (tenant_id, status and str(status), status and str(status), after, limit))
    return list(await cur.fetchall())


async def page_with_errors(conn: Conn, tenant_id: str, status: DeliveryStatus, after: int, limit: int
                           ) -> list[dict[str, Any]]:
    """The tenant's deliveries of one status with their apply errors (the dashboard's list), keyset by id."""
    cur = await conn.execute(
        "SELECT delivery_id, provider, provider_event_id, event_type, customer_id, received_at, status,"
        " status_reason, last_error, apply_failures FROM deliveries WHERE tenant_id = %s AND status = %s"
        " AND delivery_id > %s ORDER BY delivery_id LIMIT %s", (tenant_id, str(status), after, limit))
    return list(await cur.fetchall())


async def one(conn: Conn, tenant_id: str, delivery_id: int) -> dict[str, Any] | None:
    """One delivery with its raw headers and body (personal data: the caller decides who may see them)."""
    cur = await conn.execute(
        f"SELECT {_COLUMNS}, headers, convert_from(body, 'UTF8') AS body, body_erased_at, body_erased_reason"
        " FROM deliveries WHERE tenant_id = %s AND delivery_id = %s", (tenant_id, delivery_id))
    row: dict[str, Any] | None = await cur.fetchone()
    return row


async def of_customer(conn: Conn, tenant_id: str, customer_id: str) -> list[dict[str, Any]]:
    """The customer's deliveries as timeline items."""
    cur = await conn.execute(
        "SELECT 'delivery' AS kind, received_at AS at, event_type AS type, status, status_reason AS reason,"
        " delivery_id AS ref FROM deliveries WHERE tenant_id = %s AND customer_id = %s", (tenant_id, customer_id))
    return list(await cur.fetchall())
