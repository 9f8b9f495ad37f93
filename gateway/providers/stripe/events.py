"""Normalization of Stripe events into InboundEvents, dispatched by event type.

Both invoice shapes are accepted whatever the endpoint's API version says: before 2025-03-31 (`basil`) an
invoice carries top-level `payment_intent`, `charge` and `subscription`; from basil on, the subscription sits
in `parent.subscription_details` and the payments in `payments.data[].payment`. The shape is read from the
fields present. Optional fields of the wrong type read as absent; a missing required one is a PayloadError.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from actors.domain.inbound import InboundEvent, InboundKind
from gateway.providers.base import PayloadError
from gateway.providers.stripe.declines import charge_failed, payment_intent_failed
from gateway.providers.stripe.envelope import StripeEnvelope
from gateway.providers.stripe.fields import (
    EMPTY,
    Obj,
    array,
    expandable_id,
    integer,
    mapping,
    required_str,
    text,
    unix_time,
)
from gateway.providers.stripe.inbound import inbound_event

Handler = Callable[[StripeEnvelope], list[InboundEvent]]


def normalize(envelope: StripeEnvelope) -> list[InboundEvent]:
    """Canonical events for one Stripe event; [] for the event types payrisk does not use."""
    handler = _HANDLERS.get(envelope.type)
    if handler is None:
        return []
    try:
        return handler(envelope)
    except ValidationError as exc:  # a guard: the field readers return the types InboundEvent declares
        raise PayloadError(f"{envelope.type} {envelope.id}: {exc.error_count()} field(s) invalid") from None


def _invoice(kind: InboundKind) -> Handler:
    def handle(env: StripeEnvelope) -> list[InboundEvent]:
        inv = env.obj
        payment_intent, charge = _invoice_payment_ids(inv)
        return [
            inbound_event(
                env,
                kind,
                invoice_id=required_str(inv, "id", f"{env.type} {env.id}: data.object.id"),
                payment_intent_id=payment_intent,
                charge_id=charge,
                subscription_id=_invoice_subscription(inv),
                amount_due=integer(inv.get("amount_due")),
                amount_paid=integer(inv.get("amount_paid")),
                currency=text(inv.get("currency")),
                attempt_count=integer(inv.get("attempt_count")),
                next_payment_attempt=unix_time(inv.get("next_payment_attempt")),
                hosted_invoice_url=text(inv.get("hosted_invoice_url")),
                billing_reason=text(inv.get("billing_reason")),
                customer_email=text(inv.get("customer_email")),
            )
        ]

    return handle


def _invoice_payment_ids(inv: Obj) -> tuple[str | None, str | None]:
    """(payment intent, charge): top-level before basil, else from the invoice's current payment."""
    legacy = expandable_id(inv.get("payment_intent")), expandable_id(inv.get("charge"))
    if legacy != (None, None):
        return legacy
    payment = mapping(_current_payment(inv).get("payment"))
    return expandable_id(payment.get("payment_intent")), expandable_id(payment.get("charge"))


def _current_payment(inv: Obj) -> Obj:
    """The latest created invoice payment (ties: the default one). `payments` is absent unless expanded."""
    payments = [item for item in array(mapping(inv.get("payments")).get("data")) if isinstance(item, dict)]
    return max(
        payments, key=lambda p: (integer(p.get("created")) or 0, p.get("is_default") is True), default=EMPTY
    )


def _invoice_subscription(inv: Obj) -> str | None:
    details = mapping(mapping(inv.get("parent")).get("subscription_details"))
    return expandable_id(inv.get("subscription")) or expandable_id(details.get("subscription"))


def _subscription(kind: InboundKind) -> Handler:
    def handle(env: StripeEnvelope) -> list[InboundEvent]:
        sub = env.obj
        subscription_id = required_str(sub, "id", f"{env.type} {env.id}: data.object.id")
        method = expandable_id(sub.get("default_payment_method"))
        event = inbound_event(
            env,
            kind,
            subscription_id=subscription_id,
            subscription_status=text(sub.get("status")),
            payment_method_id=method,
            invoice_id=expandable_id(sub.get("latest_invoice")),
        )
        # Stripe charges the subscription's default payment method first, so a new one is worth a retry.
        if method and "default_payment_method" in env.previous_attributes:
            return [event, _method_updated(env, method, subscription_id=subscription_id)]
        return [event]

    return handle


def _payment_method(env: StripeEnvelope) -> list[InboundEvent]:
    return [_method_updated(env, required_str(env.obj, "id", f"{env.type} {env.id}: data.object.id"))]


def _customer_updated(env: StripeEnvelope) -> list[InboundEvent]:
    """Only a new, non-null `invoice_settings.default_payment_method` matters; other changes give []."""
    previous = mapping(env.previous_attributes.get("invoice_settings"))
    method = expandable_id(mapping(env.obj.get("invoice_settings")).get("default_payment_method"))
    if "default_payment_method" not in previous or method is None:
        return []
    if method == expandable_id(previous["default_payment_method"]):
        return []
    return [_method_updated(env, method, customer_email=text(env.obj.get("email")))]


def _method_updated(env: StripeEnvelope, method: str, **fields: str | None) -> InboundEvent:
    return inbound_event(env, InboundKind.PAYMENT_METHOD_UPDATED, payment_method_id=method, **fields)


_HANDLERS: dict[str, Handler] = {
    "invoice.payment_failed": _invoice(InboundKind.PAYMENT_FAILED),
    "invoice.paid": _invoice(InboundKind.PAYMENT_SUCCEEDED),
    "invoice.payment_succeeded": _invoice(InboundKind.PAYMENT_SUCCEEDED),
    "invoice.payment_action_required": _invoice(InboundKind.ACTION_REQUIRED),
    "invoice.voided": _invoice(InboundKind.INVOICE_VOIDED),
    "invoice.marked_uncollectible": _invoice(InboundKind.INVOICE_UNCOLLECTIBLE),
    "charge.failed": charge_failed,
    "payment_intent.payment_failed": payment_intent_failed,
    "customer.subscription.updated": _subscription(InboundKind.SUBSCRIPTION_UPDATED),
    "customer.subscription.deleted": _subscription(InboundKind.SUBSCRIPTION_DELETED),
    "payment_method.attached": _payment_method,
    "payment_method.automatically_updated": _payment_method,
    "customer.updated": _customer_updated,
}

#: The Stripe event types payrisk normalizes; any other type is stored, answered 200 and ignored.
EVENT_TYPES: frozenset[str] = frozenset(_HANDLERS)
