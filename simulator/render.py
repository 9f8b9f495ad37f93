"""Stripe JSON for the simulator's records, in the `View` of an API version (see `simulator.versions`).

Each function renders one object as that version shows it. Includable fields (`payments` on basil invoices,
`sources`/`subscriptions` on customers from 2020-08-27) appear only when the view asks for them; ids are expanded
into objects by `simulator.expansion`. Unknown fields are left out rather than invented.
"""

from __future__ import annotations

from typing import Any

from simulator.clock import unix
from simulator.records import (
    Charge,
    Customer,
    Invoice,
    InvoiceItem,
    PaymentIntent,
    PaymentMethod,
    SetupIntent,
    Subscription,
)
from simulator.state import State
from simulator.versions import Shape, View, shape_of, view_of

__all__ = ["Shape", "shape_of", "view_of"]

Obj = dict[str, Any]

#: How card objects (the Sources API) spell brands; PaymentMethods use the lower-case ids.
CARD_BRANDS = {"visa": "Visa", "mastercard": "MasterCard", "amex": "American Express", "discover": "Discover"}


def listing(data: list[Obj], url: str, has_more: bool = False) -> Obj:
    return {"object": "list", "data": data, "has_more": has_more, "total_count": len(data), "url": url}


# -- customers and their cards ---------------------------------------------------------------------------------
def customer(state: State, c: Customer, view: View) -> Obj:
    obj: Obj = {
        "id": c.id,
        "object": "customer",
        "created": unix(c.created),
        "email": c.email,
        "name": c.name,
        "description": c.description,
        "address": {"country": c.country},
        "account_balance" if view.billing_field else "balance": 0,
        "default_source": c.default_source,
        "livemode": False,
        "metadata": c.metadata,
        "invoice_settings": {"default_payment_method": c.default_payment_method},
    }
    if view.customer_lists or view.includes("sources"):
        cards = [card(pm) for pm in state.payment_methods.values() if pm.source and pm.customer == c.id]
        obj["sources"] = listing(cards, f"/v1/customers/{c.id}/sources")
    if view.customer_lists or view.includes("subscriptions"):
        subs = [subscription(s, view.plain()) for s in state.subscriptions.values() if s.customer == c.id]
        obj["subscriptions"] = listing(subs, f"/v1/customers/{c.id}/subscriptions")
    return obj


def _card_details(pm: PaymentMethod) -> Obj:
    return {
        "brand": pm.brand,
        "country": pm.country,
        "exp_month": pm.exp_month,
        "exp_year": pm.exp_year,
        "fingerprint": pm.fingerprint,
        "funding": pm.funding,
        "last4": pm.last4,
    }


def payment_method(pm: PaymentMethod) -> Obj:
    """A PaymentMethod; a card source (`card_…`) read as a payment method keeps its id, as Stripe does."""
    return {
        "id": pm.id,
        "object": "payment_method",
        "type": "card",
        "created": unix(pm.created),
        "customer": pm.customer,
        "livemode": False,
        "card": _card_details(pm),
        "metadata": pm.metadata,
    }


def card(pm: PaymentMethod) -> Obj:
    """A legacy card source (`object: "card"`), with the Sources API's capitalised brand names."""
    details = _card_details(pm)
    return {
        "id": pm.id,
        "object": "card",
        **details,
        "brand": CARD_BRANDS.get(pm.brand, pm.brand.title()),
        "customer": pm.customer,
        "cvc_check": "pass",
        "metadata": pm.metadata,
        "name": None,
        "tokenization_method": None,
    }


def setup_intent(si: SetupIntent) -> Obj:
    return {
        "id": si.id,
        "object": "setup_intent",
        "created": unix(si.created),
        "customer": si.customer,
        "payment_method": si.payment_method,
        "payment_method_types": ["card"],
        "status": si.status,
        "usage": si.usage,
        "livemode": False,
        "last_setup_error": None,
        "metadata": si.metadata,
    }


# -- subscriptions and invoices --------------------------------------------------------------------------------
def subscription(s: Subscription, view: View) -> Obj:
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
        "start" if view.billing_field else "start_date": unix(s.created),
        "currency": s.currency,
        "billing" if view.billing_field else "collection_method": "charge_automatically",
        "billing_cycle_anchor": unix(s.current_period_end),
        "cancel_at_period_end": False,
        "canceled_at": unix(s.canceled_at) if s.canceled_at else None,
        "default_payment_method": s.default_payment_method,
        "default_source": s.default_source,
        "latest_invoice": s.latest_invoice,
        "livemode": False,
        "metadata": s.metadata,
        "items": {"object": "list", "data": [item]},
    }
    return {**obj, **period} if view.pre_basil else obj


def invoice(state: State, inv: Invoice, view: View) -> Obj:
    cust = state.customers.get(inv.customer)
    obj: Obj = {
        "id": inv.id,
        "object": "invoice",
        "customer": inv.customer,
        "customer_email": cust.email if cust else None,
        "customer_name": cust.name if cust else None,
        "date" if view.invoice_date else "created": unix(inv.created),
        "currency": inv.currency,
        "description": inv.description,
        "amount_due": inv.amount_due,
        "amount_paid": inv.amount_paid,
        "amount_remaining": inv.amount_due - inv.amount_paid,
        "attempt_count": inv.attempt_count,
        "attempted": inv.attempted,
        "billing_reason": inv.billing_reason,
        "billing" if view.billing_field else "collection_method": "charge_automatically",
        "livemode": False,
        "next_payment_attempt": unix(inv.next_payment_attempt) if inv.next_payment_attempt else None,
        "number": inv.number,
        "metadata": inv.metadata,
        "hosted_invoice_url": f"https://invoice.stripe.sim/i/{inv.id}",
    }
    latest = inv.charges[-1] if inv.charges else None
    if view.shape == "classic":
        closed = inv.status in ("paid", "void", "uncollectible")
        flags = {"paid": inv.status == "paid", "closed": closed, "forgiven": inv.status == "uncollectible"}
        return {**obj, **flags, "charge": latest, "subscription": inv.subscription}
    obj |= {
        "status": inv.status,
        "auto_advance": inv.status in ("draft", "open"),
        "status_transitions": {"paid_at": unix(inv.paid_at) if inv.paid_at else None},
    }
    if view.shape == "legacy":
        refs = {"charge": latest, "payment_intent": inv.payment_intent, "subscription": inv.subscription}
        return {**obj, **refs, "paid": inv.status == "paid"}
    parent = (
        {"type": "subscription_details", "subscription_details": {"subscription": inv.subscription}}
        if inv.subscription
        else None
    )
    obj["parent"] = parent
    if view.includes("payments"):  # an includable field: never in webhooks, only when a read asks for it
        obj["payments"] = listing(invoice_payments(inv), f"/v1/invoices/{inv.id}/payments")
    return obj


def invoice_item(item: InvoiceItem, view: View) -> Obj:
    """An invoice item; pending while `invoice` is null. Only fields every version has, plus the version's
    pointer to a subscription (`subscription` before basil, `parent` from basil; never set here)."""
    obj: Obj = {
        "id": item.id,
        "object": "invoiceitem",
        "amount": item.amount,
        "currency": item.currency,
        "customer": item.customer,
        "date": unix(item.created),
        "description": item.description,
        "discountable": True,
        "invoice": item.invoice,
        "livemode": False,
        "metadata": item.metadata,
        "period": {"start": unix(item.created), "end": unix(item.created)},
        "proration": False,
        "quantity": item.quantity,
    }
    return {**obj, "subscription": None} if view.pre_basil else {**obj, "parent": None}


def invoice_payments(inv: Invoice) -> list[Obj]:
    """The invoice's InvoicePayments: one per invoice here (its PaymentIntent), from finalization on."""
    if not inv.payment_intent:
        return []
    status = {"paid": "paid", "void": "canceled"}.get(inv.status, "open")
    return [
        {
            "id": f"inpay_{inv.payment_intent[3:]}",
            "object": "invoice_payment",
            "invoice": inv.id,
            "is_default": True,
            "amount_requested": inv.amount_due,
            "amount_paid": inv.amount_paid if status == "paid" else None,
            "currency": inv.currency,
            "created": unix(inv.created),
            "livemode": False,
            "status": status,
            "status_transitions": {"paid_at": unix(inv.paid_at) if inv.paid_at else None, "canceled_at": None},
            "payment": {"type": "payment_intent", "payment_intent": inv.payment_intent},
        }
    ]


# -- payments --------------------------------------------------------------------------------------------------
def charge(state: State, ch: Charge, view: View) -> Obj:
    out, pm = ch.outcome, state.payment_methods[ch.payment_method]
    obj: Obj = {
        "id": ch.id,
        "object": "charge",
        "amount": ch.amount,
        "amount_captured": ch.amount if out.succeeded else 0,
        "currency": ch.currency,
        "customer": ch.customer,
        "created": unix(ch.created),
        "description": ch.description,
        "livemode": False,
        "paid": out.succeeded,
        "captured": out.succeeded,
        "status": "succeeded" if out.succeeded else "failed",
        "failure_code": out.code,
        "failure_message": out.message,
        "payment_intent": ch.payment_intent,
        "payment_method": ch.payment_method,
        "source": card(pm) if pm.source else None,
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
        "payment_method_details": {"type": "card", "card": _card_details(pm)},
    }
    return {**obj, "invoice": ch.invoice} if view.pre_basil else obj


def _seller_message(ch: Charge) -> str:
    out = ch.outcome
    if out.succeeded:
        return "Payment complete."
    if out.outcome_type == "blocked":
        return "Stripe blocked this payment as too risky."
    return f"The bank returned the decline code `{out.decline_code}`."


def payment_error(state: State, pi: PaymentIntent, *, in_response: bool = False) -> Obj | None:
    """The PaymentIntent's `last_payment_error`, or (`in_response`) the `error` of the 402 that reported it.

    A decline carries the charge and the network's codes. An attempt that needed authentication made no charge
    (`code` and `decline_code` `authentication_required`, no network codes)."""
    out = pi.last_error
    if out is None or pi.last_payment_method is None:
        return None
    pm = state.payment_methods[pi.last_payment_method]
    error: Obj = {"type": "card_error", "code": out.code, "decline_code": out.decline_code}
    if pi.last_error_charge is not None:
        error |= {
            "advice_code": out.advice_code,
            "network_advice_code": out.network_advice_code,
            "network_decline_code": out.network_decline_code,
            "charge": pi.last_error_charge,
        }
    error |= {
        "message": out.message,
        "payment_method": payment_method(pm),
        "doc_url": f"https://stripe.com/docs/error-codes/{(out.code or '').replace('_', '-')}",
    }
    if in_response:
        error["payment_intent"] = {"id": pi.id, "object": "payment_intent", "status": pi.status}
    return error


def payment_intent(state: State, pi: PaymentIntent, view: View) -> Obj:
    obj: Obj = {
        "id": pi.id,
        "object": "payment_intent",
        "amount": pi.amount,
        "amount_received": pi.amount if pi.status == "succeeded" else 0,
        "currency": pi.currency,
        "customer": pi.customer,
        "created": unix(pi.created),
        "description": pi.description,
        "status": pi.status,
        "livemode": False,
        "last_payment_error": payment_error(state, pi),
        "metadata": pi.metadata,
        "next_action": _next_action(pi),
        "payment_method": pi.last_payment_method,
        "payment_method_types": ["card"],
        "setup_future_usage": pi.setup_future_usage,
    }
    if view.pi_charges_list:
        mine = [charge(state, state.charges[ch], view.plain()) for ch in pi.charges]
        obj["charges"] = listing(mine[::-1], f"/v1/charges?payment_intent={pi.id}")
    else:
        obj["latest_charge"] = pi.latest_charge
    return {**obj, "invoice": pi.invoice} if view.pre_basil else obj


def _next_action(pi: PaymentIntent) -> Obj | None:
    """What the customer has to do on session: authenticate (3DS) a one-off PaymentIntent's card."""
    if pi.status != "requires_action":
        return None
    return {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}}


# -- events ----------------------------------------------------------------------------------------------------
def event(
    event_id: str,
    event_type: str,
    created: int,
    api_version: str,
    obj: Obj,
    previous: Obj | None,
    request: tuple[str | None, str | None],
    pending_webhooks: int = 1,
) -> Obj:
    """A Stripe event envelope; `request` is (request id, idempotency key) of the API call that caused it.
    `previous` is cut to the keys the rendered object has (a field the version lacks has no previous value)."""
    data: Obj = {"object": obj}
    if previous is not None:
        kept = {key: value for key, value in previous.items() if key in obj}
        if kept or not previous:
            data["previous_attributes"] = kept
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": created,
        "api_version": api_version,
        "livemode": False,
        "pending_webhooks": pending_webhooks,
        "data": data,
        "request": {"id": request[0], "idempotency_key": request[1]},
    }


# -- by id (expansion) -----------------------------------------------------------------------------------------
def by_id(state: State, field: str, object_id: str, view: View) -> Obj | None:
    """The object `object_id` as `field` shows it when expanded; None for an unknown id.
    A `card_…` id is a card under `source`/`default_source`, and a payment method anywhere else."""
    plain = view.plain()
    prefix = object_id.split("_", 1)[0]
    if prefix in ("pm", "card"):
        pm = state.payment_methods.get(object_id)
        if pm is None:
            return None
        return card(pm) if field in ("source", "default_source") and pm.source else payment_method(pm)
    table: dict[str, tuple[dict[str, Any], Any]] = {
        "ch": (state.charges, lambda o: charge(state, o, plain)),
        "pi": (state.payment_intents, lambda o: payment_intent(state, o, plain)),
        "in": (state.invoices, lambda o: invoice(state, o, plain)),
        "sub": (state.subscriptions, lambda o: subscription(o, plain)),
        "cus": (state.customers, lambda o: customer(state, o, plain)),
        "seti": (state.setup_intents, setup_intent),
        "ii": (state.invoice_items, lambda o: invoice_item(o, plain)),
    }
    if prefix not in table:
        return None
    records, render = table[prefix]
    record = records.get(object_id)
    return None if record is None else render(record)
