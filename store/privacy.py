"""Personal data on purpose: forgetting a customer, and the retention of raw webhook bodies.

Forgetting erases a customer's personal data (email, name, phone, address, shipping, billing details — as keys
anywhere in raw bodies, events, checkpoint, outbox, timers and notifications, and any string that contains one
of the customer's known email addresses) and keeps every amount, state and decision the analytics read. It is
recorded as a `CustomerForgotten` event at the stream's next version, in the same transaction: a shard holding
the customer in memory loses its next write's race and reloads the erased state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from psycopg.types.json import Jsonb

from store.db import Conn

PERSONAL_KEYS = frozenset({
    "email", "customer_email", "receipt_email", "name", "customer_name", "phone", "customer_phone", "address",
    "customer_address", "shipping", "customer_shipping", "billing_details", "to", "recipient",
})
_TERMINAL = ("applied", "ignored")


def redact(value: Any, emails: frozenset[str]) -> Any:
    """`value` with every personal key's value set to None and every known email address removed."""
    if isinstance(value, dict):
        return {k: None if k in PERSONAL_KEYS and v is not None else redact(v, emails) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, emails) for v in value]
    if isinstance(value, str) and any(e in value for e in emails):
        for email in emails:
            value = value.replace(email, "[erased]")
    return value


def _emails_in(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in {"email", "customer_email", "receipt_email", "to", "recipient"} and isinstance(item, str):
                found.add(item)
            _emails_in(item, found)
    elif isinstance(value, list):
        for item in value:
            _emails_in(item, found)


async def _known_emails(conn: Conn, tenant: str, customer: str) -> frozenset[str]:
    found: set[str] = set()
    cur = await conn.execute("SELECT state FROM checkpoints WHERE tenant_id = %s AND stream_id = %s",
                             (tenant, customer))
    for row in await cur.fetchall():
        _emails_in(row["state"], found)
    cur = await conn.execute("SELECT payload FROM events WHERE tenant_id = %s AND stream_id = %s", (tenant, customer))
    for row in await cur.fetchall():
        _emails_in(row["payload"], found)
    cur = await conn.execute("SELECT body FROM deliveries WHERE tenant_id = %s AND customer_id = %s",
                             (tenant, customer))
    for row in await cur.fetchall():
        _emails_in(_json_or_none(bytes(row["body"])), found)
    return frozenset(e for e in found if e)


def _json_or_none(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


#: the pure core's fold (`actors.domain.case.evolve`), passed in: the store sits below the core
Fold = Callable[[dict[str, Any], str, dict[str, Any]], dict[str, Any]]


async def forget(conn: Conn, tenant: str, customer: str, at: str, fold: Fold) -> dict[str, int] | None:
    """Erase the customer's personal data; None when the tenant has no such customer. Run in a transaction.
    The checkpoint is folded over the recorded `CustomerForgotten` event with `fold`."""
    cur = await conn.execute("SELECT version, state FROM checkpoints WHERE tenant_id = %s AND stream_id = %s"
                             " FOR UPDATE", (tenant, customer))
    checkpoint = await cur.fetchone()
    cur = await conn.execute("SELECT count(*) AS n FROM deliveries WHERE tenant_id = %s AND customer_id = %s",
                             (tenant, customer))
    row = await cur.fetchone()
    if checkpoint is None and (row is None or row["n"] == 0):
        return None
    emails = await _known_emails(conn, tenant, customer)
    counts = {"deliveries": await _deliveries(conn, tenant, customer, emails),
              "events": await _rewrite(conn, "events", "payload", "tenant_id = %s AND stream_id = %s",
                                       (tenant, customer), emails, "version")}
    for table, key, where in (
            ("outbox", "outbox_id", "tenant_id = %s AND (stream_id = %s OR payload->>'customer_id' = %s)"),
            ("timers", "timer_id", "tenant_id = %s AND (stream_id = %s OR stream_id = %s)")):
        counts[table] = await _rewrite(conn, table, "payload", where, (tenant, customer, customer), emails, key)
    cur = await conn.execute("UPDATE notifications SET recipient = NULL, detail = '{}'::jsonb"
                             " WHERE tenant_id = %s AND customer_id = %s", (tenant, customer))
    counts["notifications"] = cur.rowcount
    if checkpoint is not None:
        await _record(conn, tenant, customer, checkpoint, emails, at, fold)
    return counts


async def _deliveries(conn: Conn, tenant: str, customer: str, emails: frozenset[str]) -> int:
    cur = await conn.execute("SELECT delivery_id, body, headers FROM deliveries WHERE tenant_id = %s"
                             " AND customer_id = %s FOR UPDATE", (tenant, customer))
    rows = await cur.fetchall()
    for row in rows:
        parsed = _json_or_none(bytes(row["body"]))
        body = orjson.dumps(redact(parsed, emails)) if parsed is not None else b""
        await conn.execute("UPDATE deliveries SET body = %s, headers = %s, body_erased_at = now(),"
                           " body_erased_reason = 'forgotten' WHERE delivery_id = %s",
                           (body, Jsonb(redact(row["headers"], emails)), row["delivery_id"]))
    return len(rows)


async def _rewrite(conn: Conn, table: str, column: str, where: str, args: tuple[Any, ...], emails: frozenset[str],
                   key: str) -> int:
    cur = await conn.execute(f"SELECT {key} AS k, {column} AS v FROM {table} WHERE {where} FOR UPDATE", args)
    rows = await cur.fetchall()
    extra = " AND tenant_id = %s AND stream_id = %s" if table == "events" else ""
    extra_args = args[:2] if table == "events" else ()
    for row in rows:
        await conn.execute(f"UPDATE {table} SET {column} = %s WHERE {key} = %s{extra}",
                           (Jsonb(redact(row["v"], emails)), row["k"], *extra_args))
    return len(rows)


async def _record(conn: Conn, tenant: str, customer: str, checkpoint: dict[str, Any], emails: frozenset[str],
                  at: str, fold: Fold) -> None:
    """The `CustomerForgotten` event at the next version, and the checkpoint folded over it."""
    cur = await conn.execute("SELECT coalesce(max(version), 0) AS v FROM events WHERE tenant_id = %s"
                             " AND stream_id = %s", (tenant, customer))
    row = await cur.fetchone()
    version = int(row["v"] if row else 0) + 1
    payload = {"at": at, "erased": sorted(PERSONAL_KEYS)}
    state = fold(redact(checkpoint["state"], emails), "CustomerForgotten", payload)
    await conn.execute("INSERT INTO events (tenant_id, stream_id, version, event_type, payload)"
                       " VALUES (%s, %s, %s, 'CustomerForgotten', %s)", (tenant, customer, version, Jsonb(payload)))
    await conn.execute("UPDATE checkpoints SET version = %s, state = %s, updated_at = now() WHERE tenant_id = %s"
                       " AND stream_id = %s", (version, Jsonb(state), tenant, customer))


async def apply_retention(conn: Conn, default_days: int | None, *, batch: int = 1000) -> int:
    """Remove raw bodies (and headers) of deliveries older than the tenant's `raw_retention_days` setting (else
    `default_days`; neither: kept). Only deliveries already applied or ignored: bodies still to be applied, and
    quarantined ones waiting for a fix and a replay, are kept. Returns how many bodies were removed."""
    cur = await conn.execute(
        "UPDATE deliveries d SET body = ''::bytea, headers = '{}'::jsonb, body_erased_at = now(),"
        " body_erased_reason = 'retention' WHERE d.delivery_id IN ("
        "  SELECT d2.delivery_id FROM deliveries d2 JOIN tenants t ON t.tenant_id = d2.tenant_id"
        "  WHERE d2.status = ANY(%(terminal)s) AND d2.body_erased_at IS NULL"
        "    AND coalesce((t.settings->>'raw_retention_days')::int, %(days)s) IS NOT NULL"
        "    AND d2.received_at < now() - make_interval(days => coalesce((t.settings->>'raw_retention_days')::int,"
        "                                                                   %(days)s))"
        "  ORDER BY d2.delivery_id LIMIT %(batch)s FOR UPDATE OF d2 SKIP LOCKED)",
        {"terminal": list(_TERMINAL), "days": default_days, "batch": batch})
    return cur.rowcount
