"""Rebuild hand-off items from stored raw deliveries (for the sweeper and `payrisk replay`)."""

from __future__ import annotations

from typing import Any

from gateway.limits import nul_free
from gateway.providers import stripe as stripe_provider
from store import Conn, deliveries
from store.deliveries import DeliveryStatus


def normalize_stored(provider: str, body: bytes) -> tuple[str | None, list[dict[str, Any]]]:
    """(customer_id, events as JSON) for a stored body; raises the provider's PayloadError."""
    if provider != "stripe":
        raise stripe_provider.PayloadError(f"no normalizer for provider {provider!r}")
    events = stripe_provider.normalize(stripe_provider.parse_envelope(body))
    if not events:
        return None, []
    dumped = [e.model_dump(mode="json", exclude_none=True) for e in events]
    if not nul_free(dumped):  # stored before the edge refused these: it could never be applied
        raise stripe_provider.PayloadError("a field contains a NUL character (U+0000), which cannot be stored")
    return events[0].customer_id, dumped


async def pending_items(conn: Conn, grace_seconds: float, limit: int,
                        redispatch_after_seconds: float = 30.0) -> list[dict[str, Any]]:
    """Deliveries stored but not applied: never handed off after `grace_seconds`, or handed off and still not
    applied after `redispatch_after_seconds`. Least recently tried first, so nothing starves."""
    rows = await deliveries.waiting(conn, grace_seconds, limit, redispatch_after_seconds)
    items = []
    for row in rows:
        try:
            customer_id, events = normalize_stored(row["provider"], bytes(row["body"]))
        except stripe_provider.PayloadError as exc:
            await deliveries.set_status(conn, row["delivery_id"], DeliveryStatus.QUARANTINED, exc.reason)
            continue
        if not events:
            await deliveries.set_status(conn, row["delivery_id"], DeliveryStatus.IGNORED)
            continue
        items.append({"tenant_id": row["tenant_id"], "delivery_id": row["delivery_id"],
                      "customer_id": customer_id, "events": events})
    return items
