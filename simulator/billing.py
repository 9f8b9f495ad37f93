"""Stripe Billing objects and their lifecycle: customers, subscriptions, invoice items, invoices (cards are in
`cards.py`).

Every operation changes the in-memory `State` and reports Stripe's events through `emit`, with a renderer so
that each receiver gets the object in its own API version; charging lives in `charging.py`. Callers hold the
simulator lock, so operations never interleave.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from simulator import render
from simulator.cards import DIFF_VIEW, Cards
from simulator.clock import add_month
from simulator.errors import invalid_request, missing
from simulator.events import AUTOMATIC, Render, RequestRef
from simulator.forms import integer
from simulator.records import Customer, Invoice, InvoiceItem, PaymentIntent, Subscription

Params = dict[str, Any]
#: `pending_invoice_items_behavior` values; `include_and_require` is the pre-2022-08-01 name of "include, and
#: refuse an invoice with nothing to bill".
PENDING_BEHAVIORS = ("include", "exclude", "include_and_require")


class Billing(Cards):
    # -- customers ---------------------------------------------------------------------------------------------
    def create_customer(self, params: Params, req: RequestRef = AUTOMATIC) -> Customer:
        """`email`, `name`, `description`, `metadata`, `address[country]`, and `source` (a `tok_…`: the default
        source)."""
        c = Customer(
            id=self.ids.new("cus"),
            created=self.clock.now(),
            email=params.get("email"),
            name=params.get("name"),
            description=params.get("description"),
            metadata=dict(params.get("metadata") or {}),
        )
        country = (params.get("address") or {}).get("country")
        c.country = country or c.country
        card = self.new_source(c, {"source": params["source"]}) if params.get("source") else None
        self.state.customers[c.id] = c
        self.emit("customer.created", lambda v: render.customer(self.state, c, v), None, req)
        if card is not None:
            self.emit("customer.source.created", lambda v: render.card(card), None, req)
        return c

    def update_customer(self, customer_id: str, params: Params, req: RequestRef = AUTOMATIC) -> Customer:
        """`email`, `name`, `description`, `metadata`, `invoice_settings[default_payment_method]` and
        `default_source` (a `card_…` of this customer)."""
        c = self.customer(customer_id)
        before = render.customer(self.state, c, DIFF_VIEW)
        c.email, c.name = params.get("email", c.email), params.get("name", c.name)
        c.description = params.get("description", c.description)
        c.metadata.update(params.get("metadata") or {})
        default = (params.get("invoice_settings") or {}).get("default_payment_method")
        if default is not None:
            self._attached(default, c.id)
            c.default_payment_method = default or None
        if params.get("default_source") is not None:
            c.default_source = self.source(c.id, params["default_source"]).id if params["default_source"] else None
        self.customer_updated(c, before, req)
        return c

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
        self,
        customer_id: str,
        amount: int,
        currency: str,
        anchor: datetime,
        default_payment_method: str | None = None,
        default_source: str | None = None,
        *,
        created: datetime | None = None,
    ) -> Subscription:
        """An active subscription whose current period ends at `anchor` (no invoice now). It was `created`
        (also its `start_date`) at the start of the current period unless told otherwise."""
        start = add_month(anchor, -1)
        sub = Subscription(
            id=self.ids.new("sub"),
            customer=customer_id,
            created=created or start,
            amount=amount,
            currency=currency,
            current_period_start=start,
            current_period_end=anchor,
            default_payment_method=default_payment_method,
            default_source=default_source,
        )
        self.state.subscriptions[sub.id] = sub
        self.state.due.renewal(sub)
        return sub

    def set_status(self, sub: Subscription, status: str, req: RequestRef = AUTOMATIC) -> None:
        if sub.status == status:
            return
        previous = {"status": sub.status}
        sub.status = status
        self.state.due.renewal(sub)  # back to active or past_due: it renews again (a no-op hint otherwise)
        kind = "customer.subscription.deleted" if status == "canceled" else "customer.subscription.updated"
        self.emit(kind, lambda v: render.subscription(sub, v), previous, req)

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
        self.state.due.renewal(sub)

    # -- invoices ----------------------------------------------------------------------------------------------
    def invoice(self, invoice_id: str) -> Invoice:
        found = self.state.invoices.get(invoice_id)
        if found is None:
            raise missing("invoice", invoice_id)
        return found

    def create_invoice(self, params: Params, req: RequestRef = AUTOMATIC, pending_by_default: bool = False) -> Invoice:
        """`customer` (required), `subscription`, `description`, `pending_invoice_items_behavior` (`include`,
        `exclude`, `include_and_require`; the default is `include` when `pending_by_default`, i.e. for versions
        before 2022-08-01, else `exclude`), and the simulator's `amount` / `currency`. The amount is the included
        pending items plus `amount` (which defaults to the subscription's price, else 0)."""
        if not params.get("customer"):
            raise invalid_request("Missing required param: customer.", code="parameter_missing", param="customer")
        c = self.customer(params["customer"])
        sub = self.subscription(params["subscription"]) if params.get("subscription") else None
        behavior = params.get("pending_invoice_items_behavior") or ("include" if pending_by_default else "exclude")
        if behavior not in PENDING_BEHAVIORS:
            raise invalid_request(
                f"Invalid pending_invoice_items_behavior: must be one of {', '.join(PENDING_BEHAVIORS)}",
                param="pending_invoice_items_behavior",
            )
        currency = params.get("currency") or (sub.currency if sub else None)
        items = self.pending_items(c.id, currency) if behavior != "exclude" else []
        if behavior == "include_and_require" and not items and "amount" not in params:
            raise invalid_request(
                f"Nothing to invoice for customer {c.id}.", code="invoice_no_customer_line_items", param="customer"
            )
        base = integer(params.get("amount", sub.amount if sub else 0), "amount")
        currency = currency or (items[0].currency if items else "usd")
        amount = base + sum(item.amount for item in items)
        inv = self.new_invoice(
            c.id, amount, currency, params.get("billing_reason", "manual"), sub, req, params.get("description")
        )
        for item in items:
            item.invoice = inv.id
            inv.items.append(item.id)
        return inv

    # -- invoice items -----------------------------------------------------------------------------------------
    def invoice_item(self, item_id: str) -> InvoiceItem:
        found = self.state.invoice_items.get(item_id)
        if found is None:
            raise missing("invoiceitem", item_id)
        return found

    def pending_items(self, customer_id: str, currency: str | None) -> list[InvoiceItem]:
        """The customer's pending items in `currency` (None: the currency of the oldest pending item)."""
        pending = [i for i in self.state.invoice_items.values() if i.customer == customer_id and i.invoice is None]
        wanted = currency or (pending[0].currency if pending else None)
        return [i for i in pending if i.currency == wanted]

    def create_invoice_item(self, params: Params, req: RequestRef = AUTOMATIC) -> InvoiceItem:
        """`customer`, `amount` (or `unit_amount` × `quantity`), `currency`, `description`, `metadata`, and
        `invoice` (a draft of the same customer and currency: the amount is added to it at once). Without
        `invoice` the item is pending until an invoice includes it (`invoiceitem.created`)."""
        for name in ("customer", "currency"):
            if not params.get(name):
                raise invalid_request(f"Missing required param: {name}.", code="parameter_missing", param=name)
        c = self.customer(params["customer"])
        quantity = integer(params.get("quantity", 1), "quantity")
        if params.get("amount") is not None:
            amount = integer(params["amount"], "amount")
        elif params.get("unit_amount") is not None:
            amount = integer(params["unit_amount"], "unit_amount") * quantity
        else:
            raise invalid_request("Missing required param: amount.", code="parameter_missing", param="amount")
        currency = str(params["currency"]).lower()
        inv = self._draft_for_item(params["invoice"], c.id, currency) if params.get("invoice") else None
        item = InvoiceItem(
            id=self.ids.new("ii"),
            customer=c.id,
            created=self.clock.now(),
            amount=amount,
            currency=currency,
            quantity=quantity,
            description=params.get("description"),
            invoice=inv.id if inv else None,
            metadata=dict(params.get("metadata") or {}),
        )
        self.state.invoice_items[item.id] = item
        if inv is not None:
            inv.items.append(item.id)
            inv.amount_due += amount
        self.emit("invoiceitem.created", lambda v: render.invoice_item(item, v), None, req)
        return item

    def _draft_for_item(self, invoice_id: str, customer_id: str, currency: str) -> Invoice:
        inv = self.invoice(invoice_id)
        if inv.status != "draft":
            raise invalid_request(
                f"Invoice {inv.id} is not a draft: invoice items can only be added to draft invoices.",
                code="invoice_not_editable",
                param="invoice",
            )
        if inv.customer != customer_id or inv.currency != currency:
            raise invalid_request(
                f"The invoice {inv.id} belongs to another customer or currency than this invoice item.",
                param="invoice",
            )
        return inv

    def new_invoice(
        self,
        customer_id: str,
        amount: int,
        currency: str,
        reason: str,
        sub: Subscription | None,
        req: RequestRef = AUTOMATIC,
        description: str | None = None,
    ) -> Invoice:
        inv = Invoice(
            id=self.ids.new("in"),
            customer=customer_id,
            created=self.clock.now(),
            amount_due=amount,
            currency=currency,
            billing_reason=reason,
            subscription=sub.id if sub else None,
            description=description,
        )
        self.state.add_invoice(inv)
        if sub is not None:
            sub.latest_invoice = inv.id
        self.emit("invoice.created", self.rendered(inv), None, req)
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
        self.emit("invoice.finalized", self.rendered(inv), {"status": "draft"}, req)
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
        self.emit(kind, self.rendered(inv), previous, req)
        return inv

    def rendered(self, inv: Invoice) -> Render:
        """The invoice's renderer for `emit` (as it is now, in whichever version a receiver needs)."""
        return lambda v: render.invoice(self.state, inv, v)

