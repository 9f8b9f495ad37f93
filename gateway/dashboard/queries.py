"""The dashboard's own reads and its one write (replaying a quarantined delivery), through the store. Every read is
bound to the principal's tenant. Figures of recovery come from gateway.analytics (the API's queries), never from
here."""

from __future__ import annotations

from typing import Any

from store import Conn, checkpoints, deliveries, incidents
from store.deliveries import DeliveryStatus

Row = dict[str, Any]


async def checkpoint(conn: Conn, tenant: str, customer_id: str) -> Row | None:
    return await checkpoints.row(conn, tenant, customer_id)


async def monitor_events(conn: Conn, tenant: str, limit: int = 200) -> list[Row]:
    """Spikes and incidents, newest first."""
    return await incidents.recent_findings(conn, tenant, limit)


async def paused_retries(conn: Conn, tenant: str, limit: int = 200) -> list[Row]:
    """Retries held by an incident, newest first, with the customer's next attempt after the hold (if any)."""
    return await incidents.paused_retries(conn, tenant, limit)


async def operator_pauses(conn: Conn, tenant: str, limit: int = 100) -> list[Row]:
    """Dunning paused or resumed by operators, newest first."""
    return await incidents.operator_pauses(conn, tenant, limit)


async def delivery_page(conn: Conn, tenant: str, status: str, after: int, limit: int) -> list[Row]:
    return await deliveries.page_with_errors(conn, tenant, DeliveryStatus(status), after, limit)


async def replay_delivery(conn: Conn, tenant: str, delivery_id: int) -> tuple[str, Row | None]:
    """Re-parse one quarantined delivery (as `payrisk replay --quarantined` does for all of them). Returns the
    outcome and, when it now parses into events, the hand-off item for its customer's shard."""
    from gateway.providers.stripe import PayloadError
    from gateway.redispatch import normalize_stored

    found = await deliveries.quarantined_for_update(conn, tenant, delivery_id)
    if not found:
        return "not quarantined (already replayed, or not this tenant's)", None
    try:
        customer_id, items = normalize_stored(found[0]["provider"], bytes(found[0]["body"]))
    except PayloadError as exc:
        await deliveries.set_status(conn, delivery_id, DeliveryStatus.QUARANTINED, exc.reason)
        return f"still does not parse: {exc.reason}", None
    status = DeliveryStatus.RECEIVED if items else DeliveryStatus.IGNORED
    await deliveries.set_status(conn, delivery_id, status, None, customer_id, replayed=True)
    if not items:
        return "replayed: nothing in it for payrisk (ignored)", None
    return "replayed: handed to the customer's home", {"tenant_id": tenant, "delivery_id": delivery_id,
                                                       "customer_id": customer_id, "events": items}
