"""Read models of the incident monitor: classified failures with their domain time and provider, and the
incident streams (`monitor:{provider}`, IncidentOpened / IncidentResolved)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from store.db import Conn

STREAM_PREFIX = "monitor:"
INCIDENT_EVENTS = ("IncidentOpened", "IncidentResolved")

# Classified failures with their domain time and provider. FailureClassified carries neither yet: the time is
# that of the event that led to it (the failure or our attempt), the provider that of the failure's delivery.
OBSERVATIONS_SQL = """
SELECT * FROM (
  SELECT e.tenant_id, coalesce(e.payload->'classification'->>'category', 'unknown') AS category,
         coalesce(e.payload->>'provider', prov.provider, 'unknown') AS provider,
         coalesce((e.payload->>'at')::timestamptz, src.at) AS at
  FROM events e
  LEFT JOIN LATERAL (
    SELECT (p.payload->>'at')::timestamptz AS at FROM events p
    WHERE p.tenant_id = e.tenant_id AND p.stream_id = e.stream_id AND p.version < e.version
      AND p.event_type IN ('PaymentFailed', 'AttemptStarted') AND p.payload->>'invoice_id' = e.payload->>'invoice_id'
    ORDER BY p.version DESC LIMIT 1) src ON true
  LEFT JOIN LATERAL (
    SELECT d.provider FROM events p
    JOIN deliveries d ON d.tenant_id = p.tenant_id AND d.delivery_id = (p.payload->>'delivery_id')::bigint
    WHERE p.tenant_id = e.tenant_id AND p.stream_id = e.stream_id AND p.event_type = 'PaymentFailed'
      AND p.payload->>'invoice_id' = e.payload->>'invoice_id'
    ORDER BY p.version LIMIT 1) prov ON true
  WHERE e.event_type = 'FailureClassified' AND (%(tenant)s::text IS NULL OR e.tenant_id = %(tenant)s)
) o WHERE o.at >= %(since)s AND o.at <= %(now)s
"""


async def open_incidents(conn: Conn, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's open incidents (the IncidentOpened payloads not yet followed by IncidentResolved).

    Each has `incident_id`, `provider`, `categories` and `opened_at`. The engine asks this before retrying.
    """
    cur = await conn.execute(
        "SELECT DISTINCT ON (stream_id) stream_id, event_type, payload FROM events"
        " WHERE tenant_id = %s AND event_type = ANY(%s) AND starts_with(stream_id, %s)"
        " ORDER BY stream_id, version DESC",
        (tenant_id, list(INCIDENT_EVENTS), STREAM_PREFIX),
    )
    return [row["payload"] for row in await cur.fetchall() if row["event_type"] == "IncidentOpened"]


async def classified_failures(conn: Conn, since: datetime, now: datetime, tenant: str | None = None
                              ) -> list[dict[str, Any]]:
    """Classified failures in [since, now]: `{tenant_id, category, provider, at}` (of every tenant unless one is
    named)."""
    cur = await conn.execute(OBSERVATIONS_SQL, {"since": since, "now": now, "tenant": tenant})
    return list(await cur.fetchall())


async def tenants_with_incidents(conn: Conn, tenant: str | None) -> set[str]:
    cur = await conn.execute(
        "SELECT DISTINCT tenant_id FROM events WHERE event_type = ANY(%s) AND (%s::text IS NULL OR tenant_id = %s)",
        (list(INCIDENT_EVENTS), tenant, tenant),
    )
    return {row["tenant_id"] for row in await cur.fetchall()}


async def recent_findings(conn: Conn, tenant: str, limit: int = 200) -> list[dict[str, Any]]:
    """Spikes and incidents, newest first (`events_by_type` index)."""
    cur = await conn.execute(
        "SELECT stream_id, event_type, recorded_at, payload FROM events WHERE tenant_id = %s"
        " AND event_type = ANY(%s) ORDER BY recorded_at DESC LIMIT %s",
        (tenant, ["SpikeDetected", *INCIDENT_EVENTS], limit))
    return list(await cur.fetchall())


async def paused_retries(conn: Conn, tenant: str, limit: int = 200) -> list[dict[str, Any]]:
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


async def operator_pauses(conn: Conn, tenant: str, limit: int = 100) -> list[dict[str, Any]]:
    """Dunning paused or resumed by operators, newest first."""
    cur = await conn.execute(
        "SELECT stream_id AS customer_id, recorded_at, payload FROM events WHERE tenant_id = %s"
        " AND event_type = 'OperatorActed' AND payload->>'action' IN ('pause', 'resume')"
        " AND payload->>'outcome' = 'done' ORDER BY recorded_at DESC LIMIT %s", (tenant, limit))
    return list(await cur.fetchall())
