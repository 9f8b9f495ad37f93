"""A tenant's recorded recovery history, read for `payrisk whatif`: the customer streams with a failure classified
in a period, and the attempts ledger (card histories and attempt outcomes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from store.db import Conn


@dataclass(frozen=True, slots=True)
class LedgerAttempt:
    """One row of the `attempts` ledger, as the replay needs it."""

    invoice_id: str
    attempt_no: int
    origin: str  # payrisk | provider
    status: str  # intent | succeeded | failed | unknown | skipped
    card_fingerprint: str | None
    intended_at: datetime


@dataclass(frozen=True, slots=True)
class FirstFailure:
    """An invoice's first classified failure: what the outcome model fits attempt outcomes against."""

    invoice_id: str
    reason: str
    card_country: str | None
    at: datetime


async def streams_with_failures(conn: Conn, tenant_id: str, since: datetime,
                                until: datetime) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Every event of each customer stream that has a failure classified in ``[since, until)``, in order."""
    cur = await conn.execute(
        "SELECT stream_id, event_type, payload FROM events WHERE tenant_id = %s AND stream_id IN ("
        " SELECT DISTINCT stream_id FROM events WHERE tenant_id = %s AND event_type = 'FailureClassified'"
        " AND (payload->>'at')::timestamptz >= %s AND (payload->>'at')::timestamptz < %s)"
        " ORDER BY stream_id, version",
        (tenant_id, tenant_id, since, until))
    streams: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for row in await cur.fetchall():
        streams.setdefault(row["stream_id"], []).append((row["event_type"], row["payload"]))
    return streams


async def ledger(conn: Conn, tenant_id: str, since: datetime | None = None) -> list[LedgerAttempt]:
    """The tenant's attempts ledger (since `since`, else whole), oldest first."""
    cur = await conn.execute(
        "SELECT invoice_id, attempt_no, origin, status, card_fingerprint, intended_at FROM attempts"
        " WHERE tenant_id = %s AND (%s::timestamptz IS NULL OR intended_at >= %s)"
        " ORDER BY intended_at, idempotency_key", (tenant_id, since, since))
    return [LedgerAttempt(**row) for row in await cur.fetchall()]


async def first_failures(conn: Conn, tenant_id: str, since: datetime | None = None) -> list[FirstFailure]:
    """Each invoice's first classified failure (its reason, card country and time), of those recorded since
    `since` (else all)."""
    cur = await conn.execute(
        "SELECT DISTINCT ON (payload->>'invoice_id') payload->>'invoice_id' AS invoice_id,"
        " payload->'classification'->>'reason' AS reason, payload->'card'->>'card_country' AS card_country,"
        " (payload->>'at')::timestamptz AS at FROM events WHERE tenant_id = %s AND event_type = 'FailureClassified'"
        " AND (%s::timestamptz IS NULL OR recorded_at >= %s)"
        " ORDER BY payload->>'invoice_id', position", (tenant_id, since, since))
    return [FirstFailure(row["invoice_id"], row["reason"] or "unknown_code", row["card_country"], row["at"])
            for row in await cur.fetchall()]
