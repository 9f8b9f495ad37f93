"""Paddle Billing notifications → canonical InboundEvents. The field map (reference/paddle.md):

| Paddle | canonical |
|---|---|
| `data.customer_id` (`ctm_…`) | the customer (stream `paddle:ctm_…`) |
| transaction `data.id` (`txn_…`) | `invoice_id`; `subscription_id` beside it |
| `details.totals.grand_total` (a string, minor units) / `currency_code` | `amount_due` / `currency` |
| `payments[0].error_code` (most recent attempt first) | `error_code` |
| `payments[0].method_details.card.type` | `card_brand` |
| `payments[0].stored_payment_method_id` | `payment_method_id`, and the card identity for the network budget |
| failed `payments[]` beyond the first | Paddle's own retries (`provider_attempt`) |

`transaction.payment_failed` is a failure; `transaction.past_due` fires with it for the same attempt and only
adds its codes; `transaction.completed` is a recovery; `subscription.*` change the subscription.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from actors.domain.inbound import DeclineInfo, InboundEvent, InboundKind
from actors.domain.streams import customer_key
from gateway.providers.base import PayloadError
from gateway.providers.paddle.envelope import PaddleEnvelope
from gateway.providers.stripe.fields import Obj, array, mapping, text

PROVIDER = "paddle"


def customer_of(env: PaddleEnvelope) -> str | None:
    customer = text(env.data.get("customer_id"))
    return customer_key(PROVIDER, customer) if customer else None


def normalize(env: PaddleEnvelope) -> list[InboundEvent]:
    handler = _HANDLERS.get(env.type)
    return handler(env) if handler is not None and customer_of(env) else []


def _event(env: PaddleEnvelope, kind: InboundKind, **fields: Any) -> InboundEvent:
    return InboundEvent(kind=kind, provider=PROVIDER, provider_event_id=env.id, provider_event_type=env.type,
                        occurred_at=env.occurred_at, customer_id=customer_of(env) or "", **fields)


def _amount(value: Any) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() else value if isinstance(value, int) else None


def _failed_payments(txn: Obj) -> list[Obj]:
    return [mapping(p) for p in array(txn.get("payments")) if mapping(p).get("status") == "error"]


def decline_of(payment: Obj) -> DeclineInfo:
    card = mapping(mapping(payment.get("method_details")).get("card"))
    return DeclineInfo(error_code=text(payment.get("error_code")), card_brand=text(card.get("type")),
                       card_fingerprint=text(payment.get("stored_payment_method_id")))


def _transaction_fields(env: PaddleEnvelope) -> dict[str, Any]:
    txn = env.data
    totals = mapping(mapping(txn.get("details")).get("totals"))
    currency = text(txn.get("currency_code"))
    payments = [mapping(p) for p in array(txn.get("payments"))]
    return {"invoice_id": _required(txn, "id", env), "subscription_id": text(txn.get("subscription_id")),
            "amount_due": _amount(totals.get("grand_total")) or _amount(totals.get("total")),
            "currency": currency.lower() if currency else None,
            "payment_method_id": text(payments[0].get("stored_payment_method_id")) if payments else None,
            "billing_reason": text(txn.get("origin"))}


def _payment_failed(kind: InboundKind) -> Callable[[PaddleEnvelope], list[InboundEvent]]:
    def handle(env: PaddleEnvelope) -> list[InboundEvent]:
        failed = _failed_payments(env.data)
        decline = decline_of(failed[0]) if failed else None
        return [_event(env, kind, decline=decline, attempt_count=len(failed) or None,
                       provider_attempt=len(failed) > 1 if kind == InboundKind.PAYMENT_FAILED else None,
                       **_transaction_fields(env))]

    return handle


def _completed(env: PaddleEnvelope) -> list[InboundEvent]:
    fields = _transaction_fields(env)
    return [_event(env, InboundKind.PAYMENT_SUCCEEDED, amount_paid=fields["amount_due"], **fields)]


def _subscription(kind: InboundKind) -> Callable[[PaddleEnvelope], list[InboundEvent]]:
    def handle(env: PaddleEnvelope) -> list[InboundEvent]:
        sub = env.data
        return [_event(env, kind, subscription_id=_required(sub, "id", env),
                       subscription_status=text(sub.get("status")),
                       customer_since=_time(sub.get("started_at")))]

    return handle


def _required(obj: Obj, field: str, env: PaddleEnvelope) -> str:
    value = text(obj.get(field))
    if value is None:
        raise PayloadError(f"{env.type} {env.id}: data.{field} is missing or not a string")
    return value


def _time(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed is not None and parsed.tzinfo is not None else None


_HANDLERS: dict[str, Callable[[PaddleEnvelope], list[InboundEvent]]] = {
    "transaction.payment_failed": _payment_failed(InboundKind.PAYMENT_FAILED),
    "transaction.past_due": _payment_failed(InboundKind.DECLINE_DETAILS),
    "transaction.completed": _completed,
    "subscription.past_due": _subscription(InboundKind.SUBSCRIPTION_UPDATED),
    "subscription.updated": _subscription(InboundKind.SUBSCRIPTION_UPDATED),
    "subscription.canceled": _subscription(InboundKind.SUBSCRIPTION_DELETED),
}
EVENT_TYPES = frozenset(_HANDLERS)
