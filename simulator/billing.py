"""Stripe Billing objects and their lifecycle: customers, payment methods, subscriptions, invoices.

Every operation changes the in-memory `State` and reports Stripe's events through `emit`; charging lives in
`charging.py`. Callers hold the simulator lock, so operations never interleave.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from simulator import render
from simulator.catalog import known_card
from simulator.clock import Clock, add_month
from simulator.errors import invalid_request, missing
from simulator.events import AUTOMATIC, Emit, RequestRef
from simulator.ids import IdFactory
from simulator.records import Customer, Invoice, PaymentIntent, PaymentMethod, Subscription
from simulator.render import Shape
from simulator.state import State

Params = dict[str, Any]


class Billing:
    def __init__(self, state: State, ids: IdFactory, clock: Clock, emit: Emit, shape: Shape) -> None:
        self.state, self.ids, self.clock, self.emit, self.shape = state, ids, clock, emit, shape

    # -- customers ---------------------------------------------------------------------------------------------
    def customer(self, customer_id: str) -> Customer:
        found = self.state.customers.get(customer_id)
        if found is None:
            raise missing("customer", customer_id)
        return found

    def create_customer(self, params: Params, req: RequestRef = AUTOMATIC) -> Customer:
        c = Customer(
            id=self.ids.new("cus"),
            created=self.clock.now(),
            email=params.get("email"),
            name=params.get("name"),
            metadata=dict(params.get("metadata") or {}),
        )
        country = (params.get("address") or {}).get("country")
        c.country = country or c.country
        self.state.customers[c.id] = c
        self.emit("customer.created", render.customer(c), None, req)
        return c

    def update_customer(self, customer_id: str, params: Params, req: RequestRef = AUTOMATIC) -> Customer:
        """Only `email`, `name`, `metadata` and `invoice_settings[default_payment_method]` are supported."""
        c = self.customer(customer_id)
        before = render.customer(c)
        c.email, c.name = params.get("email", c.email), params.get("name", c.name)
        c.metadata.update(params.get("metadata") or {})
        default = (params.get("invoice_settings") or {}).get("default_payment_method")
        if default is not None:
            self._attached(default, c.id)
            c.default_payment_method = default or None
        after = render.customer(c)
        previous = {key: before[key] for key in after if before[key] != after[key]}
        if previous:
            self.emit("customer.updated", after, previous, req)
        return c

    # -- payment methods ---------------------------------------------------------------------------------------
    def payment_method(self, pm_id: str) -> PaymentMethod:
        found = self.state.payment_methods.get(pm_id)
        if found is None:
            raise missing("payment_method", pm_id)
        return found

    def create_payment_method(self, params: Params) -> PaymentMethod:
        """`card[number]` (Stripe test numbers), `card[token]` (`tok_…`), or simulator fields `card[brand]`,
        `card[funding]`, `card[country]`; `metadata[sim_force]` forces every charge ("succeed" or a code)."""
        if params.get("type", "card") != "card":
            raise invalid_request("Only card payment methods are simulated.", param="type")
        card = params.get("card") or {}
        known = known_card(card.get("number") or card.get("token") or "pm_card_visa")
        brand = card.get("brand") or (known.brand if known else "visa")
        forced = (params.get("metadata") or {}).get("sim_force") or (known.forced_decline if known else None)
        return self.new_payment_method(
            brand=brand,
            funding=card.get("funding", "credit"),
            country=card.get("country", "US"),
            last4=known.last4 if known else "4242",
            forced=forced,
        )

    def new_payment_method(
        self,
        *,
        brand: str,
        funding: str,
        country: str,
        last4: str,
        forced: str | None = None,
        fingerprint: str | None = None,
    ) -> PaymentMethod:
        pm_id = self.ids.new("pm")
        fp = fingerprint or hashlib.sha256(pm_id.encode()).hexdigest()[:16]
        now = self.clock.now()
        pm = PaymentMethod(
            id=pm_id,
            created=now,
            brand=brand,
            funding=funding,
            country=country,
            fingerprint=fp,
            last4=last4,
            exp_month=12,
            exp_year=now.year + 3,
            forced=forced,
        )
        self.state.payment_methods[pm.id] = pm
        return pm

    def attach_payment_method(self, pm_id: str, customer_id: str, req: RequestRef = AUTOMATIC) -> PaymentMethod:
        """Attach; a Stripe test id (`pm_card_visa`, `pm_card_chargeDeclinedInsufficientFunds`, …) is cloned
        into a fresh payment method first, as Stripe does."""
        self.customer(customer_id)
        known = known_card(pm_id)
        if known is not None:
            pm = self.new_payment_method(
                brand=known.brand, funding="credit", country="US", last4=known.last4, forced=known.forced_decline
            )
        else:
            pm = self.payment_method(pm_id)
        if pm.customer and pm.customer != customer_id:
            raise invalid_request("The payment method is attached to another customer.", param="customer")
        pm.customer = customer_id
        self.emit("payment_method.attached", render.payment_method(pm), None, req)
        return pm

    def _attached(self, pm_id: str, customer_id: str) -> None:
        if pm_id and self.payment_method(pm_id).customer != customer_id:
            raise invalid_request(
                f"The payment method {pm_id} is not attached to customer {customer_id}.",
                param="invoice_settings[default_payment_method]",
            )

    # -- subscriptions -----------------------------------------------------------------------------------------
    def subscription(self, sub_id: str) -> Subscription:
        found = self.state.subscriptions.get(sub_id)
        if found is None:
            raise missing("subscription", sub_id)
        return found

    def new_subscription(
        self, customer_id: str, amount: int, currency: str, anchor: datetime, default_payment_method: str | None = None
    ) -> Subscription:
        """An active subscription whose current period ends at `anchor` (no invoice now)."""
        start = add_month(anchor, -1)
        sub = Subscription(
            id=self.ids.new("sub"),
            customer=customer_id,
            created=start,
            amount=amount,
            currency=currency,
            current_period_start=start,
            current_period_end=anchor,
            default_payment_method=default_payment_method,
        )
        self.state.subscriptions[sub.id] = sub
        return sub

    def set_status(self, sub: Subscription, status: str, req: RequestRef = AUTOMATIC) -> None:
        if sub.status == status:
            return
        previous = {"status": sub.status}
        sub.status = status
        kind = "customer.subscription.deleted" if status == "canceled" else "customer.subscription.updated"
        self.emit(kind, render.subscription(sub, self.shape), previous, req)

    def cancel_subscription(self, sub_id: str, req: RequestRef = AUTOMATIC) -> Subscription:
        sub = self.subscription(sub_id)
        if sub.status == "canceled":
            raise invalid_request(f"No such subscription: '{sub_id}' is already canceled.", code="resource_missing")
        sub.canceled_at = self.clock.now()
        self.set_status(sub, "canceled", req)
        return sub

    def roll_period(self, sub: Subscription) -> None:
        sub.current_period_start = sub.current_period_end
        sub.current_period_end = add_month(sub.current_period_end)

    # -- invoices ----------------------------------------------------------------------------------------------
    def invoice(self, invoice_id: str) -> Invoice:
        found = self.state.invoices.get(invoice_id)
        if found is None:
            raise missing("invoice", invoice_id)
        return found

    def create_invoice(self, params: Params, req: RequestRef = AUTOMATIC) -> Invoice:
        """`customer` (required), `subscription`, and the simulator's `amount` / `currency` (Stripe builds the
        amount from invoice items; here it defaults to the subscription's price)."""
        if not params.get("customer"):
            raise invalid_request("Missing required param: customer.", code="parameter_missing", param="customer")
        c = self.customer(params["customer"])
        sub = self.subscription(params["subscription"]) if params.get("subscription") else None
        amount = _int(params.get("amount", sub.amount if sub else 0), "amount")
        currency = params.get("currency") or (sub.currency if sub else "usd")
        reason = params.get("billing_reason", "manual")
        return self.new_invoice(c.id, amount, currency, reason, sub, req)

    def new_invoice(
        self,
        customer_id: str,
        amount: int,
        currency: str,
        reason: str,
        sub: Subscription | None,
        req: RequestRef = AUTOMATIC,
    ) -> Invoice:
        inv = Invoice(
            id=self.ids.new("in"),
            customer=customer_id,
            created=self.clock.now(),
            amount_due=amount,
            currency=currency,
            billing_reason=reason,
            subscription=sub.id if sub else None,
        )
        self.state.invoices[inv.id] = inv
        if sub is not None:
            sub.latest_invoice = inv.id
        self.emit("invoice.created", render.invoice(self.state, inv, self.shape), None, req)
        return inv

    def finalize(self, inv: Invoice, req: RequestRef = AUTOMATIC) -> Invoice:
        """draft → open, with the invoice's PaymentIntent (one per invoice, reused by every attempt)."""
        if inv.status != "draft":
            raise invalid_request(
                f"This invoice is already finalized (status {inv.status}).", code="invoice_not_editable"
            )
        pi = PaymentIntent(
            id=self.ids.new("pi"),
            created=self.clock.now(),
            invoice=inv.id,
            customer=inv.customer,
            amount=inv.amount_due,
            currency=inv.currency,
        )
        self.state.payment_intents[pi.id] = pi
        inv.payment_intent, inv.status = pi.id, "open"
        inv.number = f"SIM-{len(self.state.invoices):06d}"
        self.emit("invoice.finalized", render.invoice(self.state, inv, self.shape), {"status": "draft"}, req)
        return inv

    def close(self, invoice_id: str, status: str, req: RequestRef = AUTOMATIC) -> Invoice:
        """open → void or uncollectible (`invoice.voided` / `invoice.marked_uncollectible`)."""
        inv = self.invoice(invoice_id)
        allowed = ("open", "uncollectible") if status == "void" else ("open",)
        if inv.status not in allowed:
            raise invalid_request(
                f"You can only mark an invoice {status} when it is {' or '.join(allowed)}; this one is {inv.status}.",
                code="invoice_not_editable",
            )
        previous = {"status": inv.status}
        inv.status, inv.next_payment_attempt = status, None
        kind = "invoice.voided" if status == "void" else "invoice.marked_uncollectible"
        self.emit(kind, render.invoice(self.state, inv, self.shape), previous, req)
        return inv


def _int(value: Any, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid_request(f"Invalid integer: {value}", code="parameter_invalid_integer", param=param) from None
