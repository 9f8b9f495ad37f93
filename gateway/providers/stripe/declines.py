"""Decline details, which Stripe sends on their own events next to `invoice.payment_failed`.

`charge.failed` carries `failure_code` and `outcome`; `payment_intent.payment_failed` carries
`last_payment_error`. Both keep the payment intent and charge ids so that the customer's machine can join them
with the invoice in whatever order they arrive (the `invoice` field on them exists before basil only; after it,
the join is by id through the API, or inferred from customer, amount and currency).
An invoice whose `charge` or `payment_intent` arrives expanded carries the same codes on the invoice event.
"""

from __future__ import annotations

from typing import Any, TypedDict

from actors.domain.inbound import DeclineInfo, InboundEvent, InboundKind
from gateway.providers.stripe import versions
from gateway.providers.stripe.envelope import StripeEnvelope
from gateway.providers.stripe.fields import Obj, expandable_id, integer, mapping, text
from gateway.providers.stripe.inbound import inbound_event


class _Card(TypedDict):
    card_brand: str | None
    card_fingerprint: str | None
    card_country: str | None


def charge_failed(env: StripeEnvelope) -> list[InboundEvent]:
    """[] for a charge of no customer (a one-off guest payment): there is no one to recover from."""
    charge = env.obj
    if charge.get("customer") is None:
        return []
    return [
        inbound_event(
            env,
            InboundKind.DECLINE_DETAILS,
            charge_id=text(charge.get("id")),
            payment_intent_id=expandable_id(charge.get("payment_intent")),
            invoice_id=expandable_id(versions.read(charge, "charge.invoice", env.api_version)),
            payment_method_id=expandable_id(charge.get("payment_method")),
            amount_due=integer(charge.get("amount")),
            currency=text(charge.get("currency")),
            decline=_charge_decline(charge),
        )
    ]


def payment_intent_failed(env: StripeEnvelope) -> list[InboundEvent]:
    intent = env.obj
    if intent.get("customer") is None:  # a malformed customer (empty, an object without id) stays an error
        return []
    error = mapping(intent.get("last_payment_error"))
    return [
        inbound_event(
            env,
            InboundKind.DECLINE_DETAILS,
            payment_intent_id=text(intent.get("id")),
            charge_id=expandable_id(error.get("charge")) or expandable_id(intent.get("latest_charge")),
            invoice_id=expandable_id(versions.read(intent, "payment_intent.invoice", env.api_version)),
            payment_method_id=expandable_id(error.get("payment_method"))
            or expandable_id(intent.get("payment_method")),
            amount_due=integer(intent.get("amount")),
            currency=text(intent.get("currency")),
            decline=_error_decline(error),
        )
    ]


def expanded_decline(charge: Any, intent: Any) -> DeclineInfo | None:
    """Codes from an invoice's expanded `charge` / `payment_intent` objects; None when neither says anything."""
    fields: dict[str, Any] = {}
    if isinstance(intent, dict) and isinstance(intent.get("last_payment_error"), dict):
        fields.update(_error_decline(intent["last_payment_error"]).model_dump(exclude_none=True))
    if isinstance(charge, dict) and (text(charge.get("failure_code")) or isinstance(charge.get("outcome"), dict)):
        fields.update(_charge_decline(charge).model_dump(exclude_none=True))
    return DeclineInfo(**fields) if fields else None


def charge_decline(charge: Obj) -> DeclineInfo:
    """The codes of a failed Charge (`failure_code`, `outcome`, the card)."""
    return _charge_decline(charge)


def error_decline(error: Obj) -> DeclineInfo:
    """The codes of an API error object (a PaymentIntent's `last_payment_error`)."""
    return _error_decline(error)


def _charge_decline(charge: Obj) -> DeclineInfo:
    outcome = mapping(charge.get("outcome"))
    details = mapping(charge.get("payment_method_details"))
    source = mapping(charge.get("source"))  # the sources API: the card object itself
    is_card = details.get("type") == "card" or "card" in details or source.get("object") == "card"
    return DeclineInfo(
        error_type="card_error" if is_card and text(charge.get("failure_code")) else None,
        error_code=text(charge.get("failure_code")),
        # For an issuer decline `outcome.reason` is the decline code; for a block it is Stripe's own reason.
        decline_code=text(outcome.get("reason")) if outcome.get("type") == "issuer_declined" else None,
        advice_code=text(outcome.get("advice_code")),
        network_advice_code=text(outcome.get("network_advice_code")),
        network_decline_code=text(outcome.get("network_decline_code")),
        outcome_type=text(outcome.get("type")),
        outcome_reason=text(outcome.get("reason")),
        network_status=text(outcome.get("network_status")),
        risk_level=text(outcome.get("risk_level")),
        message=text(charge.get("failure_message")),
        **_card(mapping(details.get("card")) or source),
    )


def _error_decline(error: Obj) -> DeclineInfo:
    """From an API error object; its `payment_method` is the full PaymentMethod, card details included."""
    return DeclineInfo(
        error_type=text(error.get("type")),
        error_code=text(error.get("code")),
        decline_code=text(error.get("decline_code")),
        advice_code=text(error.get("advice_code")),
        network_advice_code=text(error.get("network_advice_code")),
        network_decline_code=text(error.get("network_decline_code")),
        message=text(error.get("message")),
        **_card(mapping(mapping(error.get("payment_method")).get("card"))),
    )


def _card(card: Obj) -> _Card:
    return _Card(
        card_brand=text(card.get("brand")),
        card_fingerprint=text(card.get("fingerprint")),
        card_country=text(card.get("country")),
    )
