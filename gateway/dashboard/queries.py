"""The dashboard's own reads and its one write (replaying a quarantined delivery). Every statement is bound to the
principal's tenant. Figures of recovery come from gateway.analytics (the API's queries), never from here."""

from __future__ import annotations

from typing import Any

from store import Conn

Row = dict[str, Any]
_MONITOR_EVENTS = ["SpikeDetected", "IncidentOpened", "IncidentResolved"]


async def checkpoint(conn: Conn, tenant: str, customer_id: str) -> Row | None:
    cur = await conn.execute("SELECT version, state, updated_at FROM checkpoints WHERE tenant_id = %s"
                             " AND stream_id = %s", (tenant, customer_id))
    row: Row | None = await cur.fetchone()
    return row


async def monitor_events(conn: Conn, tenant: str, limit: int = 200) -> list[Row]:
    """Spikes and incidents, newest first (`events_by_type` index)."""
    cur = await conn.execute(
        "SELECT stream_id, event_type, recorded_at, payload FROM events WHERE tenant_id = %s"
        " AND event_type = ANY(%s) ORDER BY recorded_at DESC LIMIT %s", (tenant, _MONITOR_EVENTS, limit))
    return list(await cur.fetchall())


async def paused_retries(conn: Conn, tenant: str, limit: int = 200) -> list[Row]:
    """Retries held by an incident, newest first, with the customer's next attempt after the hold (if any)."""
    cur = await conn.execute(
        "SELECT p.stream_id AS customer_id, p.recorded_at, p.payload, nxt.recorded_at AS resumed_at"
        " FROM (SELECT stream_id, version, recorded_at, payload FROM events WHERE tenant_id = %(t)s"
        "       AND event_type = 'RetryPaused' ORDER BY recorded_at DESC LIMIT %(n)s) p"
        " LEFT JOIN LATERAL (SELECT recorded_at FROM events e WHERE e.tenant_id = %(t)s"
        "   AND e.stream_id = p.stream_id AND e.version > p.version AND e.event_type = 'AttemptStarted'"
        "   AND e.payload->>'invoice_id' = p.payload->>'invoice_id' ORDER BY e.version LIMIT 1) nxt ON true"
        " ORDER BY p.recorded_at DESC", {"t": tenant, "n": limit})
    return list(await cur.fetchall())


async def operator_pauses(conn: Conn, tenant: str, limit: int = 100) -> list[Row]:
    """Dunning paused or resumed by operators, newest first."""
    cur = await conn.execute(
        "SELECT stream_id AS customer_id, recorded_at, payload FROM events WHERE tenant_id = %s"
        " AND event_type = 'OperatorActed' AND payload->>'action' IN ('pause', 'resume')"
        " AND payload->>'outcome' = 'done' ORDER BY recorded_at DESC LIMIT %s", (tenant, limit))
    return list(await cur.fetchall())


async def deliveries(conn: Conn, tenant: str, status: str, after: int, limit: int) -> list[Row]:
    cur = await conn.execute(
        "SELECT delivery_id, provider, provider_event_id, event_type, customer_id, received_at, status,"
        " status_reason, last_error, apply_failures FROM deliveries WHERE tenant_id = %s AND status = %s"
        " AND delivery_id > %s ORDER BY delivery_id LIMIT %s", (tenant, status, after, limit))
    return list(await cur.fetchall())


async def replay_delivery(conn: Conn, tenant: str, delivery_id: int) -> tuple[str, Row | None]:
    """Re-parse one quarantined delivery (as `payrisk replay --quarantined` does for all of them). Returns the
    outcome and, when it now parses into events, the hand-off item for its customer's shard."""
    from gateway.providers.stripe import PayloadError
    from gateway.redispatch import normalize_stored

    cur = await conn.execute("SELECT provider, body FROM deliveries WHERE tenant_id = %s AND delivery_id = %s"
                             " AND status = 'quarantined' FOR UPDATE", (tenant, delivery_id))
    row = await cur.fetchone()
    if row is None:
        return "not quarantined (already replayed, or not this tenant's)", None
    try:
        customer_id, items = normalize_stored(row["provider"], bytes(row["body"]))
    except PayloadError as exc:
        await conn.execute("UPDATE deliveries SET status_reason = %s WHERE delivery_id = %s", (exc.reason, delivery_id))
        return f"still does not parse: {exc.reason}", None
    status = "received" if items else "ignored"
    await conn.execute("UPDATE deliveries SET status = %s, status_reason = NULL, customer_id = %s, apply_failures = 0"
                       " WHERE delivery_id = %s", (status, customer_id, delivery_id))
    if not items:
        return "replayed: nothing in it for payrisk (ignored)", None
    return "replayed: handed to the customer's home", {"tenant_id": tenant, "delivery_id": delivery_id,
                                                       "customer_id": customer_id, "events": items}
