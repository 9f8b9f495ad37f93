"""The `attempts` ledger: every charge we intend (committed before the provider call, I3) and its outcome, plus
the attempts a provider's own retry feature made. The per-card network retry budget is read from it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from store.db import Conn


@dataclass(frozen=True, slots=True)
class Attempt:
    """One row: `origin` is `payrisk` (our retry) or `provider` (the provider's own)."""

    tenant_id: str
    idempotency_key: str
    customer_id: str
    invoice_id: str
    attempt_no: int
    provider: str
    status: str  # intent | unknown | succeeded | failed
    amount: int | None
    currency: str | None
    card_fingerprint: str | None
    card_brand: str | None
    intended_at: datetime
    completed_at: datetime | None = None
    origin: str = "payrisk"


async def record(conn: Conn, attempt: Attempt) -> bool:
    """Write the row once (a repeat with the same key writes nothing); True when it was new."""
    cur = await conn.execute(
        "INSERT INTO attempts (tenant_id, idempotency_key, customer_id, invoice_id, attempt_no, provider, status,"
        " amount, currency, card_fingerprint, card_brand, intended_at, completed_at, origin)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (attempt.tenant_id, attempt.idempotency_key, attempt.customer_id, attempt.invoice_id, attempt.attempt_no,
         attempt.provider, attempt.status, attempt.amount, attempt.currency, attempt.card_fingerprint,
         attempt.card_brand, attempt.intended_at, attempt.completed_at, attempt.origin))
    return cur.rowcount == 1


_COLUMNS = ("tenant_id, idempotency_key, customer_id, invoice_id, attempt_no, provider, status, amount, currency,"
            " card_fingerprint, card_brand, intended_at, completed_at, origin")
_TYPES = ("text", "text", "text", "text", "int4", "text", "text", "int8", "text", "text", "text", "timestamptz",
          "timestamptz", "text")


async def record_many(conn: Conn, rows: Sequence[Attempt]) -> None:
    """`record` for a batch in one statement: a row whose key (or invoice and attempt number) exists is not
    written again."""
    if not rows:
        return
    arrays = ", ".join(f"%b::{t}[]" for t in _TYPES)
    await conn.execute(f"INSERT INTO attempts ({_COLUMNS}) SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING",
                       [list(column) for column in zip(*(astuple(r) for r in rows), strict=True)])


async def settle(conn: Conn, tenant_id: str, key: str, status: str, outcome: dict[str, Any]) -> None:
    """The provider's answer to our attempt (an answer never overwrites a settled one)."""
    await conn.execute(
        "UPDATE attempts SET status = %s, outcome = %s, completed_at = now()"
        " WHERE tenant_id = %s AND idempotency_key = %s AND status IN ('intent', 'unknown')",
        (status, Jsonb(outcome), tenant_id, key))


async def intended_at(conn: Conn, tenant_id: str, key: str) -> datetime | None:
    cur = await conn.execute("SELECT intended_at FROM attempts WHERE tenant_id = %s AND idempotency_key = %s",
                             (tenant_id, key))
    row = await cur.fetchone()
    return row["intended_at"] if row else None


async def card_history(conn: Conn, tenant_id: str, fingerprints: list[str],
                       since: datetime) -> dict[str, list[datetime]]:
    """Past attempts per card fingerprint since `since` (the network retry budget ledger)."""
    if not fingerprints:
        return {}
    cur = await conn.execute(
        "SELECT card_fingerprint, intended_at FROM attempts WHERE tenant_id = %s"
        " AND card_fingerprint = ANY(%s) AND intended_at >= %s ORDER BY intended_at",
        (tenant_id, fingerprints, since))
    history: dict[str, list[datetime]] = {}
    for row in await cur.fetchall():
        history.setdefault(row["card_fingerprint"], []).append(row["intended_at"])
    return history
