"""Stripe JSON for the simulator's records, in the shape of an API version.

`legacy` (before 2025-03-31): invoices carry top-level `charge`, `payment_intent`, `subscription`, `paid`;
charges and payment intents carry `invoice`. `basil` (2025-03-31 and later): the subscription moves to
`parent.subscription_details.subscription`, payments to `payments.data[].payment`, and `invoice` leaves
Charge and PaymentIntent. Unknown fields are left out rather than invented.
"""

from __future__ import annotations

from typing import Any, Literal

from simulator.clock import unix
from simulator.records import Charge, Customer, Invoice, PaymentIntent, PaymentMethod, Subscription
from simulator.state import State

Shape = Literal["legacy", "basil"]
Obj = dict[str, Any]
BASIL = "2025-03-31"


def shape_of(api_version: str) -> Shape:
    return "legacy" if api_version[:10] < BASIL else "basil"


def customer(c: Customer) -> Obj:
    return {
        "id": c.id,
        "object": "customer",
        "created": unix(c.created),
        "email": c.email,
        "name": c.name,
        "address": {"country": c.country},
        "livemode": False,
        "metadata": c.metadata,
        "invoice_settings": {"default_payment_method": c.default_payment_method},
    }


def payment_method(pm: PaymentMethod) -> Obj:
    card = {
        "brand": pm.brand,
        "country": pm.country,
        "exp_month": pm.exp_month,
        "exp_year": pm.exp_year,
        "fingerprint": pm.fingerprint,
        "funding": pm.funding,
        "last4": pm.last4,
    }
    return {
        "id": pm.id,
        "object": "payment_method",
        "type": "card",
        "created": unix(pm.created),
        "customer": pm.customer,
        "livemode": False,
        "card": card,
        "metadata": {},
    }


def subscription(s: Subscription, shape: Shape) -> Obj:
    period = {"current_period_start": unix(s.current_period_start), "current_period_end": unix(s.current_period_end)}
    item = {
        "id": f"si_{s.id[4:]}",
        "object": "subscription_item",
        "quantity": 1,
        "price": {
            "object": "price",
            "unit_amount": s.amount,
            "currency": s.currency,
            "recurring": {"interval": "month", "interval_count": 1},
        },
        **period,
    }
    obj: Obj = {
        "id": s.id,
        "object": "subscription",
        "customer": s.customer,
        "status": s.status,
        "created": unix(s.created),
        "currency": s.currency,
        "collection_method": "charge_automatically",
        "billing_cycle_anchor": unix(s.current_period_end),
        "cancel_at_period_end": False,
        "canceled_at": unix(s.canceled_at) if s.canceled_at else None,
        "default_payment_method": s.default_payment_method,
        "latest_invoice": s.latest_invoice,
        "livemode": False,
        "metadata": s.metadata,
        "items": {"object": "list", "data": [item]},
    }
    return {**obj, **period} if shape == "legacy" else obj


def invoice(state: State, inv: Invoice, shape: Shape) -> Obj:
    cust = state.customers.get(inv.customer)
    obj: Obj = {
        "id": inv.id,
        "object": "invoice",
        "customer": inv.customer,
        "customer_email": cust.email if cust else None,
        "customer_name": cust.name if cust else None,
        "created": unix(inv.created),
        "currency": inv.currency,
        "amount_due": inv.amount_due,
        "amount_paid": inv.amount_paid,
        "amount_remaining": inv.amount_due - inv.amount_paid,
        "attempt_count": inv.attempt_count,
        "attempted": inv.attempted,
        "auto_advance": inv.status in ("draft", "open"),
        "billing_reason": inv.billing_reason,
        "collection_method": "charge_automatically",
        "livemode": False,
        "next_payment_attempt": unix(inv.next_payment_attempt) if inv.next_payment_attempt else None,
        "number": inv.number,
        "status": inv.status,
        "metadata": inv.metadata,
        "hosted_invoice_url": f"https://invoice.stripe.sim/i/{inv.id}",
        "status_transitions": {"paid_at": unix(inv.paid_at) if inv.paid_at else None},
    }
    latest = inv.charges[-1] if inv.charges else None
    if shape == "legacy":
        return {
            **obj,
            "subscription": inv.subscription,
            "payment_intent": inv.payment_intent,
            "charge": latest,
            "paid": inv.status == "paid",
        }
    parent = (
        {"type": "subscription_details", "subscription_details": {"subscription": inv.subscription}}
        if inv.subscription
        else None
    )
    return {**obj, "parent": parent, "payments": _payments(inv)}


def _payments(inv: Invoice) -> Obj:
    if not inv.payment_intent:
        return {"object": "list", "data": [], "has_more": False}
    payment = {
        "id": f"inpay_{inv.payment_intent[3:]}",
        "object": "invoice_payment",
        "invoice": inv.id,
        "is_default": True,
        "amount_requested": inv.amount_due,
        "amount_paid": inv.amount_paid or None,
        "currency": inv.currency,
        "status": "paid" if inv.status == "paid" else "open",
        "payment": {"type": "payment_intent", "payment_intent": inv.payment_intent},
    }
    return {"object": "list", "data": [payment], "has_more": False}


def card_error(outcome_code: str | None, ch: Charge, pi: PaymentIntent, pm: PaymentMethod) -> Obj:
    """The `error` object of a 402 (also a PaymentIntent's `last_payment_error`)."""
    out = ch.outcome
    return {
        "type": "card_error",
        "code": outcome_code,
        "decline_code": out.decline_code,
        "advice_code": out.advice_code,
        "network_advice_code": out.network_advice_code,
        "network_decline_code": out.network_decline_code,
        "message": out.message,
        "charge": ch.id,
        "payment_intent": {"id": pi.id, "object": "payment_intent", "status": pi.status},
        "payment_method": payment_method(pm),
        "doc_url": f"https://stripe.com/docs/error-codes/{(outcome_code or '').replace('_', '-')}",
    }


def charge(state: State, ch: Charge, shape: Shape) -> Obj:
    out, pm = ch.outcome, state.payment_methods[ch.payment_method]
    obj: Obj = {
        "id": ch.id,
        "object": "charge",
        "amount": ch.amount,
        "amount_captured": ch.amount if out.succeeded else 0,
        "currency": ch.currency,
        "customer": ch.customer,
        "created": unix(ch.created),
        "livemode": False,
        "paid": out.succeeded,
        "captured": out.succeeded,
        "status": "succeeded" if out.succeeded else "failed",
        "failure_code": out.code,
        "failure_message": out.message,
        "payment_intent": ch.payment_intent,
        "payment_method": ch.payment_method,
        "outcome": {
            "type": out.outcome_type,
            "reason": out.outcome_reason,
            "network_status": out.network_status,
            "risk_level": out.risk_level,
            "advice_code": out.advice_code,
            "network_advice_code": out.network_advice_code,
            "network_decline_code": out.network_decline_code,
            "seller_message": _seller_message(ch),
        },
        "payment_method_details": {"type": "card", "card": payment_method(pm)["card"]},
    }
    return {**obj, "invoice": ch.invoice} if shape == "legacy" else obj


def _seller_message(ch: Charge) -> str:
    out = ch.outcome
    if out.succeeded:
        return "Payment complete."
    if out.outcome_type == "blocked":
        return "Stripe blocked this payment as too risky."
    return f"The bank returned the decline code `{out.decline_code}`."


def payment_intent(state: State, pi: PaymentIntent, shape: Shape) -> Obj:
    error = None
    if pi.last_error is not None and pi.latest_charge:
        ch = state.charges[pi.latest_charge]
        error = card_error(pi.last_error.code, ch, pi, state.payment_methods[ch.payment_method])
        error.pop("payment_intent")
    obj: Obj = {
        "id": pi.id,
        "object": "payment_intent",
        "amount": pi.amount,
        "currency": pi.currency,
        "customer": pi.customer,
        "created": unix(pi.created),
        "status": pi.status,
        "livemode": False,
        "latest_charge": pi.latest_charge,
        "last_payment_error": error,
        "payment_method": pi.last_payment_method,
    }
    return {**obj, "invoice": pi.invoice} if shape == "legacy" else obj


def event(
    event_id: str,
    event_type: str,
    created: int,
    api_version: str,
    obj: Obj,
    previous: Obj | None,
    request: tuple[str | None, str | None],
) -> Obj:
    """A Stripe event envelope; `request` is (request id, idempotency key) of the API call that caused it."""
    data: Obj = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": created,
        "api_version": api_version,
        "livemode": False,
        "pending_webhooks": 1,
        "data": data,
        "request": {"id": request[0], "idempotency_key": request[1]},
    }
