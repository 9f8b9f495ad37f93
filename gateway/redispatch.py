"""Rebuild hand-off items from stored raw deliveries (for the sweeper and `payrisk replay`)."""

from __future__ import annotations

from typing import Any

from gateway.providers import stripe as stripe_provider
from payrisk.store import Conn


def normalize_stored(provider: str, body: bytes) -> tuple[str | None, list[dict[str, Any]]]:
    """(customer_id, events as JSON) for a stored body; raises the provider's PayloadError."""
    if provider != "stripe":
        raise stripe_provider.PayloadError(f"no normalizer for provider {provider!r}")
    events = stripe_provider.normalize(stripe_provider.parse_envelope(body))
    if not events:
        return None, []
    return events[0].customer_id, [e.model_dump(mode="json", exclude_none=True) for e in events]


async def pending_items(conn: Conn, grace_seconds: float, limit: int) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT delivery_id, tenant_id, provider, body FROM deliveries"
        " WHERE status IN ('received', 'dispatched') AND received_at < now() - make_interval(secs => %s)"
        " AND coalesce(dispatched_at, received_at) < now() - make_interval(secs => %s)"
        " ORDER BY delivery_id LIMIT %s",
        (grace_seconds, grace_seconds, limit),
    )
    items = []
    for row in await cur.fetchall():
        customer_id, events = normalize_stored(row["provider"], bytes(row["body"]))
        items.append({"tenant_id": row["tenant_id"], "delivery_id": row["delivery_id"],
                      "customer_id": customer_id, "events": events})
    return items
