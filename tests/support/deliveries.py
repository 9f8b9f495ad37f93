"""A stored `invoice.payment_failed` delivery and its hand-off item, as the gateway would leave them."""

from __future__ import annotations

from typing import Any

from gateway.redispatch import normalize_stored
from store import Database, deliveries
from store.deliveries import DeliveryStatus, NewDelivery
from tests.support.stripe_events import envelope, invoice


async def stored_failure(db: Database, tag: str) -> dict[str, Any]:
    customer = f"cus_{tag}"
    body = envelope(f"evt_{tag}", "invoice.payment_failed", invoice(f"in_{tag}", customer))
    _, items = normalize_stored("stripe", body)
    [delivery_id] = await deliveries.insert_many(db, [NewDelivery(
        "default", "stripe", f"evt_{tag}", "invoice.payment_failed", customer, body, {}, DeliveryStatus.RECEIVED,
        None)])
    return {"tenant_id": "default", "delivery_id": delivery_id, "customer_id": customer, "events": items}
