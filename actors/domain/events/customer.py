"""Events about the customer rather than one case, and records that change no case (explicitly: see the fold)."""

from __future__ import annotations

from actors.domain.events.base import CustomerEvent, InvoiceEvent, IsoTime, Json


class DeclineDetailsReceived(CustomerEvent):
    """Decline codes, from the invoice event, a charge / payment intent event or the provider API (`source`).
    `link` names the record (`charge:ch_…`, `invoice:in_…:1`, `api:in_…:1`)."""

    link: str
    source: str
    invoice_id: str | None = None
    payment_intent_id: str | None = None
    charge_id: str | None = None
    decline: Json
    delivery_id: int | None = None
    amount: int | None = None
    currency: str | None = None
    occurred_at: IsoTime | None = None
    payment_method_id: str | None = None
    failure_no: int | None = None


class DeclineJoined(InvoiceEvent):
    """Decline details with no id linking them joined to the invoice (`how=inferred`)."""

    link: str
    how: str
    reason: str


class PaymentMethodUpdated(CustomerEvent):
    """A card update in any form (`via` the provider event that said so): open cases retry on it."""

    payment_method_id: str | None
    delivery_id: int | None = None
    via: str | None = None
    previous: str | None = None
    occurred_at: IsoTime | None = None
    at: IsoTime | None = None
    customer_since: IsoTime | None = None


class PaymentMethodKnown(CustomerEvent):
    """The customer's default instrument as the provider showed it (not a change)."""

    payment_method_id: str | None
    occurred_at: IsoTime | None
    customer_since: IsoTime | None = None


class SubscriptionChanged(CustomerEvent):
    subscription_id: str | None
    status: str | None
    customer_since: IsoTime | None = None


class ProfileUpdated(CustomerEvent):
    """What the business told us about the customer (segment inputs), once per request."""

    profile: Json
    request_id: str
    at: IsoTime


class CustomerForgotten(CustomerEvent):
    """Personal data erased on request; `erased` names the keys."""

    at: IsoTime
    erased: list[str]


class NotificationRequested(CustomerEvent):
    """An outbox row (email, alert, provider action) written with the decision."""

    invoice_id: str | None
    topic: str
    idempotency_key: str
    template: str | None = None
    kind: str | None = None


class ShadowDecision(InvoiceEvent):
    """Observe mode: what payrisk would have done (a plan, or an email / provider action), recorded, not done."""

    action: str
    explanation: str
    shadow: bool
    at: IsoTime | None = None
    attempt_no: int | None = None
    max_attempts: int | None = None
    strategy: Json | None = None
    idempotency_key: str | None = None
    template: str | None = None


class LateEventIgnored(CustomerEvent):
    """A provider event that arrived too late to change anything (I7): `event` is its provider type."""

    event: str
    reason: str
    invoice_id: str | None = None
