"""Normalization of Stripe events into InboundEvents, dispatched by event type.

Every API version's shape is accepted (`versions.py` is the field map): invoice `charge` / `payment_intent` as
ids, as expanded objects, or absent (basil and later); the subscription top-level or under
`parent.subscription_details`; the sources API (`default_source`, `customer.source.*`) beside payment methods.
Decline codes carried by an expanded charge or payment intent travel on the invoice event itself. Optional fields
of the wrong type read as absent; a missing required one is a PayloadError.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from actors.domain.inbound import InboundEvent, InboundKind
from gateway.providers.base import PayloadError
from gateway.providers.stripe import versions
from gateway.providers.stripe.declines import charge_failed, expanded_decline, payment_intent_failed
from gateway.providers.stripe.envelope import StripeEnvelope
from gateway.providers.stripe.fields import (
    Obj,
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
        inv, version = env.obj, env.api_version
        intent = versions.read(inv, "invoice.payment_intent", version)
        charge = versions.read(inv, "invoice.charge", version)
        return [
            inbound_event(
                env,
                kind,
                invoice_id=required_str(inv, "id", f"{env.type} {env.id}: data.object.id"),
                payment_intent_id=expandable_id(intent),
                charge_id=expandable_id(charge),
                subscription_id=expandable_id(versions.read(inv, "invoice.subscription", version)),
                amount_due=integer(inv.get("amount_due")),
                amount_paid=integer(inv.get("amount_paid")),
                currency=text(inv.get("currency")),
                attempt_count=integer(inv.get("attempt_count")),
                next_payment_attempt=unix_time(inv.get("next_payment_attempt")),
                hosted_invoice_url=text(inv.get("hosted_invoice_url")),
                billing_reason=text(inv.get("billing_reason")),
                customer_email=text(inv.get("customer_email")),
                decline=expanded_decline(charge, intent) if kind != InboundKind.PAYMENT_SUCCEEDED else None,
                no_charge_made=_no_charge_made(inv, version) if kind == InboundKind.PAYMENT_FAILED else None,
                provider_attempt=_smart_retry(env, integer(inv.get("attempt_count"))) if kind in (
                    InboundKind.PAYMENT_FAILED, InboundKind.PAYMENT_SUCCEEDED) else None,
            )
        ]

    return handle


def _smart_retry(env: StripeEnvelope, attempt_count: int | None) -> bool:
    """Stripe's own retry (Smart Retries or a retry schedule): `attempt_count` rose past the first attempt and the
    request was not ours (our retries carry our idempotency key; manual payments leave `attempt_count` alone).
    It is written to the attempt ledger so the card's network budget counts it."""
    return bool(attempt_count and attempt_count > 1 and not env.request_idempotency_key)


def _no_charge_made(inv: Obj, version: str | None) -> bool | None:
    """True when a shape that names the charge says there was none; None when the shape cannot say: from basil on
    an invoice has no `charge` field (Stripe's own fixtures still carry it as a null placeholder)."""
    if "charge" not in inv or versions.range_of(version).name == "basil":
        return None
    return inv["charge"] is None


def _subscription(kind: InboundKind) -> Handler:
    def handle(env: StripeEnvelope) -> list[InboundEvent]:
        sub = env.obj
        subscription_id = required_str(sub, "id", f"{env.type} {env.id}: data.object.id")
        method = expandable_id(versions.read(sub, "subscription.default_payment_method", env.api_version))
        event = inbound_event(
            env,
            kind,
            subscription_id=subscription_id,
            subscription_status=text(sub.get("status")),
            payment_method_id=method,
            invoice_id=expandable_id(sub.get("latest_invoice")),
            customer_since=unix_time(versions.read(sub, "subscription.started", env.api_version)),
        )
        # Stripe charges the subscription's default instrument first, so a new one is worth a retry.
        changed = {"default_payment_method", "default_source"} & set(env.previous_attributes)
        if method and changed:
            previous = expandable_id(env.previous_attributes[sorted(changed)[0]])
            if previous != method:
                return [event, _method_updated(env, method, subscription_id=subscription_id,
                                               previous_payment_method_id=previous)]
        return [event]

    return handle


def _payment_method(env: StripeEnvelope) -> list[InboundEvent]:
    """`payment_method.attached` / `.automatically_updated`, `customer.source.updated`: that instrument."""
    return [_method_updated(env, required_str(env.obj, "id", f"{env.type} {env.id}: data.object.id"))]


def _setup_intent(env: StripeEnvelope) -> list[InboundEvent]:
    """A payment method set up for future off-session use: the customer fixed their card through a form."""
    method = expandable_id(env.obj.get("payment_method"))
    if method is None or expandable_id(env.obj.get("customer")) is None:
        return []  # a setup for no customer (or none completed) says nothing about a recovery
    return [_method_updated(env, method)]


def _customer_updated(env: StripeEnvelope) -> list[InboundEvent]:
    """The customer as it is now. Whether its default instrument changed is decided against what the
    customer's state knows, because `previous_attributes` is not always there (and not every sender sends it)."""
    obj, version = env.obj, env.api_version
    method = expandable_id(versions.read(obj, "customer.default_payment_method", version))
    previous = versions.read(env.previous_attributes, "customer.default_payment_method", version)
    said_changed = "default_source" in env.previous_attributes or "default_payment_method" in mapping(
        env.previous_attributes.get("invoice_settings"))
    return [inbound_event(
        env, InboundKind.CUSTOMER_UPDATED, payment_method_id=method, customer_email=text(obj.get("email")),
        previous_payment_method_id=expandable_id(previous) if said_changed else None,
        customer_since=unix_time(versions.read(obj, "customer.created", version)))]


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
    "customer.source.updated": _payment_method,
    "setup_intent.succeeded": _setup_intent,
}

#: The Stripe event types payrisk normalizes; any other type is stored, answered 200 and ignored.
EVENT_TYPES: frozenset[str] = frozenset(_HANDLERS)
