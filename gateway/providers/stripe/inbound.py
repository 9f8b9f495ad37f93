"""The one constructor of Stripe InboundEvents: envelope fields, and the customer every event needs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from actors.domain.inbound import InboundEvent, InboundKind
from gateway.providers.base import PayloadError
from gateway.providers.stripe.envelope import StripeEnvelope, customer_id_of

PROVIDER = "stripe"


def inbound_event(env: StripeEnvelope, kind: InboundKind, **fields: Any) -> InboundEvent:
    """An event of `kind` about the envelope's customer; PayloadError when the object names none."""
    customer = customer_id_of(env)
    if customer is None:
        field = "id" if env.obj.get("object") == "customer" else "customer"
        raise PayloadError(f"{env.type} {env.id}: data.object.{field} is missing")
    return InboundEvent(
        kind=kind,
        provider=PROVIDER,
        provider_event_id=env.id,
        provider_event_type=env.type,
        occurred_at=datetime.fromtimestamp(env.created, UTC),
        customer_id=customer,
        request_idempotency_key=env.request_idempotency_key,
        **fields,
    )
