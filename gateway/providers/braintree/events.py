"""Braintree notifications (as the SDK parsed them) → canonical InboundEvents. The field map (reference/braintree.md):

| Braintree | canonical |
|---|---|
| `transaction.customer_details.id` (else `subscription:<id>`) | the customer (stream `braintree:<id>`) |
| subscription id + the billing period start the charge was for | `invoice_id` (`sub_1:2026-03-01`) |
| `transaction.processor_response_code` | `decline_code` |
| `transaction.gateway_rejection_reason` | `error_code` |
| `transaction.processor_response_type` (else `status`) | `error_type` (`soft_declined`, `hard_declined`…) |
| `transaction.network_response_code` / `merchant_advice_code` | `network_decline_code` / `network_advice_code` |
| `credit_card_details.card_type` / `unique_number_identifier` | `card_brand` / `card_fingerprint` |
| `subscription.payment_method_token` | `payment_method_id` |
| `transaction.customer_details.email` | `customer_email` (dunning emails) |
| `subscription.failure_count` | `attempt_count`; above 1 the charge was Braintree's own retry |
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from actors.domain.inbound import DeclineInfo, InboundEvent, InboundKind
from actors.domain.streams import customer_key

PROVIDER = "braintree"
_BRANDS = {"visa": "visa", "mastercard": "mastercard", "american express": "amex", "discover": "discover"}


def event_id(payload: str) -> str:
    """Braintree notifications have no id; a redelivery carries the same signed payload, so its hash is one."""
    return "bt_" + hashlib.sha256(payload.replace("\n", "").encode()).hexdigest()[:40]


def _attr(obj: Any, name: str) -> Any:
    return getattr(obj, name, None) if obj is not None else None


def _str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def subscription_of(n: Any) -> Any:
    return _attr(n, "subscription")


def transaction_of(n: Any) -> Any:
    direct = _attr(n, "transaction")
    if direct is not None:
        return direct
    transactions = _attr(subscription_of(n), "transactions") or []
    return transactions[0] if transactions else None


def customer_of(n: Any) -> str | None:
    txn = transaction_of(n)
    customer = _str(_attr(_attr(txn, "customer_details"), "id"))
    if customer is None:
        sub_id = _str(_attr(subscription_of(n), "id")) or _str(_attr(txn, "subscription_id"))
        customer = f"subscription:{sub_id}" if sub_id else None
    return customer_key(PROVIDER, customer) if customer else None


def invoice_of(n: Any) -> str | None:
    txn, sub = transaction_of(n), subscription_of(n)
    sub_id = _str(_attr(sub, "id")) or _str(_attr(txn, "subscription_id"))
    if sub_id is None:
        return _str(_attr(txn, "id"))
    period = _attr(_attr(txn, "subscription_details"), "billing_period_start_date") or _attr(
        sub, "billing_period_start_date")
    return f"{sub_id}:{period.isoformat() if isinstance(period, date) else period}" if period else sub_id


def minor_units(amount: Any) -> int | None:
    try:
        return int(Decimal(str(amount)) * 100) if amount not in (None, "") else None
    except InvalidOperation:
        return None


def decline_of(txn: Any) -> DeclineInfo:
    card = _attr(txn, "credit_card_details")
    brand = (_str(_attr(card, "card_type")) or "").lower()
    return DeclineInfo(
        decline_code=_str(_attr(txn, "processor_response_code")),
        error_code=_str(_attr(txn, "gateway_rejection_reason")),
        error_type=_str(_attr(txn, "processor_response_type")) or _str(_attr(txn, "status")),
        network_decline_code=_str(_attr(txn, "network_response_code")),
        network_advice_code=_str(_attr(txn, "merchant_advice_code")),
        message=_str(_attr(txn, "processor_response_text")) or _str(_attr(txn, "additional_processor_response")),
        card_brand=_BRANDS.get(brand, brand or None),
        card_fingerprint=_str(_attr(card, "unique_number_identifier")),
        card_country=_str(_attr(card, "country_of_issuance")),
    )


def normalize(n: Any, payload: str) -> list[InboundEvent]:
    handler = _HANDLERS.get(str(_attr(n, "kind")))
    return handler(n, payload) if handler is not None and customer_of(n) else []


def _event(n: Any, payload: str, kind: InboundKind, **fields: Any) -> InboundEvent:
    stamp = _attr(n, "timestamp")
    at = stamp.replace(tzinfo=UTC) if isinstance(stamp, datetime) and stamp.tzinfo is None else stamp
    return InboundEvent(kind=kind, provider=PROVIDER, provider_event_id=event_id(payload),
                        provider_event_type=str(_attr(n, "kind")), occurred_at=at or datetime.now(UTC),
                        customer_id=customer_of(n) or "", **fields)


def _charge_fields(n: Any) -> dict[str, Any]:
    txn, sub = transaction_of(n), subscription_of(n)
    currency = _str(_attr(txn, "currency_iso_code"))
    return {"invoice_id": invoice_of(n), "charge_id": _str(_attr(txn, "id")),
            "subscription_id": _str(_attr(sub, "id")) or _str(_attr(txn, "subscription_id")),
            "amount_due": minor_units(_attr(txn, "amount")) or minor_units(_attr(sub, "balance")),
            "currency": currency.lower() if currency else None,
            "customer_email": _str(_attr(_attr(txn, "customer_details"), "email")),
            "payment_method_id": _str(_attr(sub, "payment_method_token")) or _str(_attr(
                _attr(txn, "credit_card_details"), "token"))}


def _charged_unsuccessfully(n: Any, payload: str) -> list[InboundEvent]:
    failures = _attr(subscription_of(n), "failure_count")
    count = int(failures) if isinstance(failures, int) else None
    return [_event(n, payload, InboundKind.PAYMENT_FAILED, decline=decline_of(transaction_of(n)),
                   attempt_count=count, provider_attempt=bool(count and count > 1), **_charge_fields(n))]


def _charged_successfully(n: Any, payload: str) -> list[InboundEvent]:
    fields = _charge_fields(n)
    return [_event(n, payload, InboundKind.PAYMENT_SUCCEEDED, amount_paid=fields["amount_due"], **fields)]


def _settlement_declined(n: Any, payload: str) -> list[InboundEvent]:
    return [_event(n, payload, InboundKind.PAYMENT_FAILED, decline=decline_of(transaction_of(n)), **_charge_fields(n))]


def _retried(n: Any, payload: str) -> list[InboundEvent]:
    """Braintree retried a declined transaction on its own: its codes, and an attempt against the card's budget."""
    fields = _charge_fields(n)
    return [_event(n, payload, InboundKind.DECLINE_DETAILS, decline=decline_of(transaction_of(n)),
                   provider_attempt=True, **fields)]


def _subscription(kind: InboundKind, status: str) -> Callable[[Any, str], list[InboundEvent]]:
    def handle(n: Any, payload: str) -> list[InboundEvent]:
        sub = subscription_of(n)
        return [_event(n, payload, kind, subscription_id=_str(_attr(sub, "id")), subscription_status=status,
                       payment_method_id=_str(_attr(sub, "payment_method_token")))]

    return handle


_HANDLERS: dict[str, Callable[[Any, str], list[InboundEvent]]] = {
    "subscription_charged_unsuccessfully": _charged_unsuccessfully,
    "subscription_charged_successfully": _charged_successfully,
    "subscription_went_past_due": _subscription(InboundKind.SUBSCRIPTION_UPDATED, "past_due"),
    "subscription_went_active": _subscription(InboundKind.SUBSCRIPTION_UPDATED, "active"),
    "subscription_canceled": _subscription(InboundKind.SUBSCRIPTION_DELETED, "canceled"),
    "subscription_expired": _subscription(InboundKind.SUBSCRIPTION_DELETED, "expired"),
    "transaction_settlement_declined": _settlement_declined,
    "transaction_retried": _retried,
}
KINDS = frozenset(_HANDLERS)
