"""Stripe: `Stripe-Signature` verification with the official SDK, and normalization of webhook events.

Both invoice shapes are accepted: before API version 2025-03-31 (top-level `charge`, `payment_intent`,
`subscription`) and after it (`parent.subscription_details.subscription`, `payments.data[].payment`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import stripe

from actors.domain.inbound import DeclineInfo, InboundEvent, InboundKind

Obj = dict[str, Any]


class SignatureError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PayloadError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class StripeEnvelope:
    id: str
    type: str
    created: int
    api_version: str | None
    obj: Obj
    previous_attributes: Obj
    request_idempotency_key: str | None


def verify(raw_body: bytes, signature_header: str | None, secrets: Sequence[str], tolerance: int,
           now: int | None = None) -> None:
    """Accept when any secret's HMAC matches a `v1` signature and the timestamp is within `tolerance`."""
    if not signature_header:
        raise SignatureError("missing Stripe-Signature header")
    if not secrets:
        raise SignatureError("no webhook secret is configured for this tenant (STRIPE_WEBHOOK_SECRET)")
    fields = [part.split("=", 1) for part in signature_header.split(",") if "=" in part]
    timestamps = [v for k, v in fields if k.strip() == "t"]
    if not timestamps or not timestamps[0].strip().isdigit():
        raise SignatureError("Stripe-Signature has no timestamp (t=...)")
    if not any(k.strip() == "v1" for k, _ in fields):
        raise SignatureError("Stripe-Signature has no v1 signature")
    if int(timestamps[0]) < (now if now is not None else int(time.time())) - tolerance:
        raise SignatureError(f"timestamp is older than the {tolerance} s tolerance")
    payload = raw_body.decode("utf-8", errors="surrogateescape")
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, signature_header, secret, tolerance=None)
            return
        except stripe.SignatureVerificationError:
            continue
    raise SignatureError("no v1 signature matches the expected signature for any configured secret")


def parse_envelope(raw_body: bytes) -> StripeEnvelope:
    try:
        doc = orjson.loads(raw_body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PayloadError("body is not a JSON object")
    data = doc.get("data")
    if not isinstance(doc.get("id"), str) or not isinstance(doc.get("type"), str):
        raise PayloadError("event has no string id and type")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise PayloadError("event has no data.object")
    request = doc.get("request") if isinstance(doc.get("request"), dict) else {}
    created = doc.get("created")
    return StripeEnvelope(doc["id"], doc["type"], created if isinstance(created, int) else 0,
                          doc.get("api_version"), data["object"], data.get("previous_attributes") or {},
                          request.get("idempotency_key") if request else None)


def customer_id_of(envelope: StripeEnvelope) -> str | None:
    obj = envelope.obj
    if obj.get("object") == "customer":
        return _str(obj.get("id"))
    return _id(obj.get("customer"))


def normalize(envelope: StripeEnvelope) -> list[InboundEvent]:
    """Canonical events for one Stripe event; [] for event types payrisk does not use."""
    handler = _HANDLERS.get(envelope.type)
    if handler is None:
        return []
    try:
        return handler(envelope)
    except (KeyError, TypeError, ValueError) as exc:
        raise PayloadError(f"{envelope.type}: cannot read payload: {exc}") from None


def _base(env: StripeEnvelope, kind: InboundKind, **fields: Any) -> InboundEvent:
    customer = customer_id_of(env)
    if not customer:
        raise PayloadError(f"{env.type} {env.id}: data.object.customer is missing")
    return InboundEvent(kind=kind, provider="stripe", provider_event_id=env.id, provider_event_type=env.type,
                        occurred_at=datetime.fromtimestamp(env.created, UTC), customer_id=customer,
                        request_idempotency_key=env.request_idempotency_key, **fields)


def _invoice(env: StripeEnvelope, kind: InboundKind) -> list[InboundEvent]:
    inv = env.obj
    if not _str(inv.get("id")):
        raise PayloadError(f"{env.type} {env.id}: invoice id is missing")
    pi, charge = _invoice_payment_ids(inv)
    next_attempt = inv.get("next_payment_attempt")
    return [_base(env, kind, invoice_id=inv["id"], payment_intent_id=pi, charge_id=charge,
                  subscription_id=_invoice_subscription(inv), amount_due=_int(inv.get("amount_due")),
                  amount_paid=_int(inv.get("amount_paid")), currency=_str(inv.get("currency")),
                  attempt_count=_int(inv.get("attempt_count")),
                  next_payment_attempt=datetime.fromtimestamp(next_attempt, UTC) if isinstance(next_attempt, int)
                  else None, hosted_invoice_url=_str(inv.get("hosted_invoice_url")),
                  billing_reason=_str(inv.get("billing_reason")), customer_email=_str(inv.get("customer_email")))]


def _invoice_payment_ids(inv: Obj) -> tuple[str | None, str | None]:
    pi, charge = _id(inv.get("payment_intent")), _id(inv.get("charge"))
    payments = inv.get("payments")
    if isinstance(payments, dict):
        for item in payments.get("data") or []:
            payment = (item or {}).get("payment") or {}
            pi = pi or _id(payment.get("payment_intent"))
            charge = charge or _id(payment.get("charge"))
    return pi, charge


def _invoice_subscription(inv: Obj) -> str | None:
    parent = inv.get("parent") or {}
    details = parent.get("subscription_details") or {} if isinstance(parent, dict) else {}
    return _id(inv.get("subscription")) or _id(details.get("subscription"))


def _charge_failed(env: StripeEnvelope) -> list[InboundEvent]:
    ch = env.obj
    outcome = ch.get("outcome") or {}
    card = ((ch.get("payment_method_details") or {}).get("card")) or {}
    decline = DeclineInfo(
        error_type="card_error" if ch.get("failure_code") else None, error_code=_str(ch.get("failure_code")),
        decline_code=_str(outcome.get("reason")) if outcome.get("type") == "issuer_declined" else None,
        advice_code=_str(outcome.get("advice_code")), network_advice_code=_str(outcome.get("network_advice_code")),
        network_decline_code=_str(outcome.get("network_decline_code")), outcome_type=_str(outcome.get("type")),
        outcome_reason=_str(outcome.get("reason")), network_status=_str(outcome.get("network_status")),
        risk_level=_str(outcome.get("risk_level")), message=_str(ch.get("failure_message")),
        card_brand=_str(card.get("brand")), card_fingerprint=_str(card.get("fingerprint")),
        card_country=_str(card.get("country")))
    return [_base(env, InboundKind.DECLINE_DETAILS, charge_id=_str(ch.get("id")),
                  payment_intent_id=_id(ch.get("payment_intent")), invoice_id=_id(ch.get("invoice")),
                  amount_due=_int(ch.get("amount")), currency=_str(ch.get("currency")), decline=decline)]


def _pi_failed(env: StripeEnvelope) -> list[InboundEvent]:
    pi = env.obj
    err = pi.get("last_payment_error") or {}
    pm = err.get("payment_method") or {}
    card = (pm.get("card") or {}) if isinstance(pm, dict) else {}
    decline = DeclineInfo(
        error_type=_str(err.get("type")), error_code=_str(err.get("code")), decline_code=_str(err.get("decline_code")),
        advice_code=_str(err.get("advice_code")), network_advice_code=_str(err.get("network_advice_code")),
        network_decline_code=_str(err.get("network_decline_code")), message=_str(err.get("message")),
        card_brand=_str(card.get("brand")), card_fingerprint=_str(card.get("fingerprint")),
        card_country=_str(card.get("country")))
    return [_base(env, InboundKind.DECLINE_DETAILS, payment_intent_id=_str(pi.get("id")),
                  charge_id=_id(pi.get("latest_charge")) or _id(err.get("charge")), invoice_id=_id(pi.get("invoice")),
                  amount_due=_int(pi.get("amount")), currency=_str(pi.get("currency")), decline=decline)]


def _subscription(kind: InboundKind) -> Callable[[StripeEnvelope], list[InboundEvent]]:
    def handle(env: StripeEnvelope) -> list[InboundEvent]:
        sub = env.obj
        return [_base(env, kind, subscription_id=_str(sub.get("id")), subscription_status=_str(sub.get("status")),
                      payment_method_id=_id(sub.get("default_payment_method")))]

    return handle


def _pm_attached(env: StripeEnvelope) -> list[InboundEvent]:
    return [_base(env, InboundKind.PAYMENT_METHOD_UPDATED, payment_method_id=_str(env.obj.get("id")))]


def _customer_updated(env: StripeEnvelope) -> list[InboundEvent]:
    previous = env.previous_attributes.get("invoice_settings")
    if not isinstance(previous, dict) or "default_payment_method" not in previous:
        return []  # some other customer field changed
    settings = env.obj.get("invoice_settings") or {}
    return [_base(env, InboundKind.PAYMENT_METHOD_UPDATED,
                  payment_method_id=_id(settings.get("default_payment_method")),
                  customer_email=_str(env.obj.get("email")))]


def _invoice_handler(kind: InboundKind) -> Callable[[StripeEnvelope], list[InboundEvent]]:
    return lambda env: _invoice(env, kind)


_HANDLERS: dict[str, Callable[[StripeEnvelope], list[InboundEvent]]] = {
    "invoice.payment_failed": _invoice_handler(InboundKind.PAYMENT_FAILED),
    "invoice.paid": _invoice_handler(InboundKind.PAYMENT_SUCCEEDED),
    "invoice.payment_succeeded": _invoice_handler(InboundKind.PAYMENT_SUCCEEDED),
    "invoice.payment_action_required": _invoice_handler(InboundKind.ACTION_REQUIRED),
    "invoice.voided": _invoice_handler(InboundKind.INVOICE_VOIDED),
    "invoice.marked_uncollectible": _invoice_handler(InboundKind.INVOICE_UNCOLLECTIBLE),
    "charge.failed": _charge_failed,
    "payment_intent.payment_failed": _pi_failed,
    "customer.subscription.updated": _subscription(InboundKind.SUBSCRIPTION_UPDATED),
    "customer.subscription.deleted": _subscription(InboundKind.SUBSCRIPTION_DELETED),
    "payment_method.attached": _pm_attached,
    "payment_method.automatically_updated": _pm_attached,
    "customer.updated": _customer_updated,
}


def _id(value: Any) -> str | None:
    """An expandable field: an id string or an expanded object with an id."""
    if isinstance(value, dict):
        return _str(value.get("id"))
    return _str(value)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
