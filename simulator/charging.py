"""Charging an invoice: choose the payment method, ask the outcome model, record the ledger, report events.

One PaymentIntent per invoice; one Charge per attempt. A decline raises the Stripe 402 `card_error` after the
state, ledger and events are updated (Stripe's behaviour: the failed charge exists even though the call failed).
"""

from __future__ import annotations

import contextlib
import random
from datetime import timedelta
from typing import Any

from simulator import render
from simulator.billing import Billing, Params
from simulator.catalog import SUCCEED, declined
from simulator.clock import add_month
from simulator.errors import StripeApiError, invalid_request
from simulator.events import AUTOMATIC, RequestRef
from simulator.ledger import Ledger, LedgerEntry
from simulator.outcomes import CardFacts, ChargeContext, InvoiceFacts, Outcome, OutcomeModel
from simulator.records import Charge, Invoice, PaymentMethod, Subscription

#: Codes Stripe Smart Retries never retries (stripe.md §2), plus Radar's highest_risk_level (`fraudulent`).
SMART_RETRY_HARD = frozenset(
    {
        "authentication_required",
        "incorrect_number",
        "lost_card",
        "pickup_card",
        "revocation_of_all_authorizations",
        "revocation_of_authorization",
        "stolen_card",
        "transaction_not_allowed",
        "fraudulent",
    }
)


class Charging:
    def __init__(
        self, billing: Billing, model: OutcomeModel, ledger: Ledger, seed: int, smart_retry_days: tuple[float, ...] = ()
    ) -> None:
        self.billing, self.model, self.ledger, self.seed = billing, model, ledger, seed
        self.smart_retry_days = smart_retry_days  # empty: Smart Retries off, next_payment_attempt stays null

    def pay(self, invoice_id: str, params: Params, req: RequestRef = AUTOMATIC, source: str = "api") -> Invoice:
        """Attempt payment now (finalizing a draft first). Raises a 402 StripeApiError on a decline."""
        b = self.billing
        inv = b.invoice(invoice_id)
        if inv.status == "draft":
            b.finalize(inv, req)
        if inv.status == "paid":
            raise invalid_request("Invoice is already paid.")
        if inv.status == "void":
            raise invalid_request("You cannot pay a void invoice.", code="invoice_not_editable")
        pm = self._payment_method(inv, params.get("payment_method"))
        charge = self._attempt(inv, pm, req, source)
        if not charge.outcome.succeeded:
            pi = b.state.payment_intents[charge.payment_intent]
            raise StripeApiError(402, render.card_error(charge.outcome.code, charge, pi, pm))
        return inv

    def _payment_method(self, inv: Invoice, explicit: str | None) -> PaymentMethod:
        """Stripe's order: the explicit one, the subscription's default, the customer's invoice default."""
        b = self.billing
        sub = b.state.subscriptions.get(inv.subscription or "")
        customer_default = b.customer(inv.customer).default_payment_method
        pm_id = explicit or (sub.default_payment_method if sub else None) or customer_default
        if not pm_id:
            raise invalid_request(
                "This customer has no attached payment source or default payment method.", param="payment_method"
            )
        pm = b.payment_method(pm_id)
        if pm.customer != inv.customer:
            raise invalid_request(
                f"The payment method {pm_id} is not attached to customer {inv.customer}.", param="payment_method"
            )
        return pm

    def _attempt(self, inv: Invoice, pm: PaymentMethod, req: RequestRef, source: str) -> Charge:
        b, now = self.billing, self.billing.clock.now()
        outcome = self._decide(inv, pm)
        charge = Charge(
            id=b.ids.new("ch"),
            created=now,
            invoice=inv.id,
            customer=inv.customer,
            payment_intent=inv.payment_intent or "",
            payment_method=pm.id,
            amount=inv.amount_due,
            currency=inv.currency,
            outcome=outcome,
        )
        b.state.charges[charge.id] = charge
        if source != "api" or not inv.attempted:
            inv.attempt_count += 1  # Stripe counts the first attempt and automatic retries, not manual ones
        inv.attempted = True
        inv.charges.append(charge.id)
        self._record(inv, charge, req, source)
        if outcome.succeeded:
            self._succeeded(inv, charge, req)
        else:
            self._failed(inv, charge, req, source)
        return charge

    def _decide(self, inv: Invoice, pm: PaymentMethod) -> Outcome:
        if pm.forced is not None:
            return (
                Outcome.success()
                if pm.forced == SUCCEED
                else declined(pm.forced, with_network_advice=pm.brand == "mastercard")
            )
        return self.model.decide(self.context(inv, pm))

    def context(self, inv: Invoice, pm: PaymentMethod) -> ChargeContext:
        """The model's view of the next attempt; its rng is seeded by (seed, invoice, attempt number)."""
        b = self.billing
        now, attempt = b.clock.now(), len(inv.charges) + 1
        local = b.customer(inv.customer).local(now)
        days = (now - inv.first_failed_at).total_seconds() / 86400 if inv.first_failed_at else None
        previous = inv.last_decline[1] if inv.last_decline and inv.last_decline[0] == pm.id else None
        return ChargeContext(
            card=CardFacts(
                id=pm.id, brand=pm.brand, funding=pm.funding, country=pm.country, fingerprint=pm.fingerprint
            ),
            invoice=InvoiceFacts(id=inv.id, customer=inv.customer, amount=inv.amount_due, currency=inv.currency),
            attempt=attempt,
            days_since_first_failure=days,
            previous_decline=previous,
            day_of_month=local.day,
            local_hour=local.hour,
            rng=random.Random(f"{self.seed}:{inv.id}:{attempt}"),
        )

    def _record(self, inv: Invoice, ch: Charge, req: RequestRef, source: str) -> None:
        out = ch.outcome
        self.ledger.append(
            LedgerEntry(
                at=ch.created,
                charge=ch.id,
                invoice=inv.id,
                customer=inv.customer,
                payment_method=ch.payment_method,
                amount=ch.amount,
                currency=ch.currency,
                idempotency_key=req.idempotency_key,
                source=source,
                attempt=len(inv.charges),
                outcome="succeeded" if out.succeeded else "declined",
                code=out.code,
                decline_code=out.decline_code,
                advice_code=out.advice_code,
                network_advice_code=out.network_advice_code,
                network_decline_code=out.network_decline_code,
                outcome_type=out.outcome_type,
            )
        )

    def _succeeded(self, inv: Invoice, ch: Charge, req: RequestRef) -> None:
        b = self.billing
        pi = b.state.payment_intents[ch.payment_intent]
        pi.status, pi.latest_charge, pi.last_error, pi.last_payment_method = "succeeded", ch.id, None, ch.payment_method
        inv.status, inv.amount_paid, inv.paid_at, inv.next_payment_attempt = "paid", inv.amount_due, ch.created, None
        self._emit_all(
            req,
            ("charge.succeeded", render.charge(b.state, ch, b.shape)),
            ("payment_intent.succeeded", render.payment_intent(b.state, pi, b.shape)),
        )
        invoice = render.invoice(b.state, inv, b.shape)
        self._emit_all(req, ("invoice.paid", invoice), ("invoice.payment_succeeded", invoice))
        sub = b.state.subscriptions.get(inv.subscription or "")
        if sub is not None and sub.status in ("past_due", "unpaid", "incomplete") and not self._open_invoices(sub):
            b.set_status(sub, "active", req)

    def _failed(self, inv: Invoice, ch: Charge, req: RequestRef, source: str) -> None:
        b, out = self.billing, ch.outcome
        pi = b.state.payment_intents[ch.payment_intent]
        pi.status, pi.latest_charge, pi.last_error, pi.last_payment_method = (
            "requires_payment_method",
            ch.id,
            out,
            ch.payment_method,
        )
        inv.first_failed_at = inv.first_failed_at or ch.created
        inv.last_decline = (ch.payment_method, out.decline_code or out.code or "generic_decline")
        if source != "api":
            self._schedule_smart_retry(inv, out)
        self._emit_all(
            req,
            ("charge.failed", render.charge(b.state, ch, b.shape)),
            ("payment_intent.payment_failed", render.payment_intent(b.state, pi, b.shape)),
            ("invoice.payment_failed", render.invoice(b.state, inv, b.shape)),
        )
        sub = b.state.subscriptions.get(inv.subscription or "")
        if sub is not None and sub.status == "active":
            b.set_status(sub, "past_due", req)

    def _schedule_smart_retry(self, inv: Invoice, out: Outcome) -> None:
        if inv.smart_retries_done >= len(self.smart_retry_days) or out.decline_code in SMART_RETRY_HARD:
            inv.next_payment_attempt = None
            return
        assert inv.first_failed_at is not None
        inv.next_payment_attempt = inv.first_failed_at + timedelta(days=self.smart_retry_days[inv.smart_retries_done])

    def smart_retry(self, inv: Invoice) -> None:
        """Run the automatic retry that is due on `inv` (declines are expected and swallowed)."""
        inv.smart_retries_done += 1
        inv.next_payment_attempt = None
        with contextlib.suppress(StripeApiError):  # the decline is in the ledger and the events
            self.pay(inv.id, {}, AUTOMATIC, source="smart_retry")

    def _open_invoices(self, sub: Subscription) -> list[Invoice]:
        return [i for i in self.billing.state.invoices.values() if i.subscription == sub.id and i.status == "open"]

    def _emit_all(self, req: RequestRef, *events: tuple[str, dict[str, Any]]) -> None:
        for kind, obj in events:
            self.billing.emit(kind, obj, None, req)

    # -- subscriptions that charge -----------------------------------------------------------------------------
    def create_subscription(self, params: Params, req: RequestRef = AUTOMATIC) -> Subscription:
        """`customer`, `items[0][price_data][unit_amount|currency]` (or the simulator's `amount`/`currency`),
        `default_payment_method`. Charges the first invoice now; a decline leaves the subscription incomplete."""
        b = self.billing
        customer = b.customer(params.get("customer") or "")
        price = ((params.get("items") or [{}])[0] or {}).get("price_data") or {}
        amount = int(price.get("unit_amount") or params.get("amount") or 0)
        currency = price.get("currency") or params.get("currency") or "usd"
        now = b.clock.now()
        sub = b.new_subscription(customer.id, amount, currency, add_month(now), params.get("default_payment_method"))
        sub.status = "incomplete"
        b.emit("customer.subscription.created", render.subscription(sub, b.shape), None, req)
        inv = b.new_invoice(customer.id, amount, currency, "subscription_create", sub, req)
        try:
            self.pay(inv.id, {}, req, source="automatic")
        except StripeApiError:
            return sub  # Stripe's default payment_behavior=allow_incomplete: the subscription exists
        return sub

    def renew(self, sub: Subscription) -> Invoice:
        """The renewal at `current_period_end`: roll the period, invoice, and make the first automatic attempt."""
        b = self.billing
        b.roll_period(sub)
        inv = b.new_invoice(sub.customer, sub.amount, sub.currency, "subscription_cycle", sub)
        with contextlib.suppress(StripeApiError):  # a decline or no payment method: the invoice stays open
            self.pay(inv.id, {}, AUTOMATIC, source="automatic")
        return inv
