"""Charging an invoice: choose the payment method, ask the outcome model, record the ledger, report events.

One PaymentIntent per invoice; one Charge per attempt. A decline raises the Stripe 402 `card_error` after the
state, ledger and events are updated (Stripe's behaviour: the failed charge exists even though the call failed).

An outcome of `authentication_required` (the model's code, or a card forced to "sca") is the off-session attempt
that needs the customer's authentication: Stripe makes no charge, the PaymentIntent returns to
`requires_payment_method` with `last_payment_error.code = authentication_required`, and the invoice reports
`invoice.payment_failed` (with `charge: null` when nothing was charged before) and
`invoice.payment_action_required`, next to `payment_intent.payment_failed`; there is no `charge.failed`.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from simulator import render
from simulator.billing import Billing, Params
from simulator.catalog import AUTHENTICATION_REQUIRED, SUCCEED, declined
from simulator.clock import add_month
from simulator.errors import StripeApiError, invalid_request
from simulator.events import AUTOMATIC, Render, RequestRef
from simulator.ledger import Ledger, LedgerEntry
from simulator.outcomes import CardFacts, ChargeContext, InvoiceFacts, Outcome, OutcomeModel
from simulator.records import Charge, Invoice, PaymentIntent, PaymentMethod, Subscription

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
        # `payment_method` (a PaymentMethod) or, for the Sources API, `source` (a card_… of the customer)
        pm = self._payment_method(inv, params.get("payment_method") or params.get("source"))
        if not self._attempt(inv, pm, req, source):
            pi = b.state.payment_intents[inv.payment_intent or ""]
            raise StripeApiError(402, render.payment_error(b.state, pi, in_response=True) or {})
        return inv

    def _payment_method(self, inv: Invoice, explicit: str | None) -> PaymentMethod:
        """Stripe's order: the explicit one, the subscription's `default_payment_method`, its `default_source`,
        the customer's `invoice_settings.default_payment_method`, the customer's `default_source`."""
        b = self.billing
        sub = b.state.subscriptions.get(inv.subscription or "")
        customer = b.customer(inv.customer)
        candidates = (
            explicit,
            sub.default_payment_method if sub else None,
            sub.default_source if sub else None,
            customer.default_payment_method,
            customer.default_source,
        )
        pm_id = next((c for c in candidates if c), None)
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

    def _attempt(self, inv: Invoice, pm: PaymentMethod, req: RequestRef, source: str) -> bool:
        """One attempt on `inv` with `pm`; True when it succeeded."""
        outcome = self._decide(inv, pm)
        inv.attempts_made += 1
        if source != "api" or not inv.attempted:
            inv.attempt_count += 1  # Stripe counts the first attempt and automatic retries, not manual ones
        inv.attempted = True
        if outcome.decline_code == AUTHENTICATION_REQUIRED:
            self._record(inv, None, pm, outcome, req, source)
            self._needs_authentication(inv, pm, outcome, req, source)
            return False
        b = self.billing
        charge = Charge(
            id=b.ids.new("ch"),
            created=b.clock.now(),
            invoice=inv.id,
            customer=inv.customer,
            payment_intent=inv.payment_intent or "",
            payment_method=pm.id,
            amount=inv.amount_due,
            currency=inv.currency,
            outcome=outcome,
        )
        b.state.charges[charge.id] = charge
        inv.charges.append(charge.id)
        b.state.payment_intents[charge.payment_intent].charges.append(charge.id)
        self._record(inv, charge.id, pm, outcome, req, source)
        if outcome.succeeded:
            self._succeeded(inv, charge, req)
        else:
            self._failed(inv, charge, req, source)
        return outcome.succeeded

    def _decide(self, inv: Invoice, pm: PaymentMethod) -> Outcome:
        return self.decide(pm, lambda: self.context(inv, pm))

    def decide(self, pm: PaymentMethod, context: Callable[[], ChargeContext]) -> Outcome:
        """The card's forced outcome if it has one, else the model's decision on `context()`."""
        if pm.forced is not None:
            return (
                Outcome.success()
                if pm.forced == SUCCEED
                else declined(pm.forced, with_network_advice=pm.brand == "mastercard")
            )
        return self.model.decide(context())

    def context(self, inv: Invoice, pm: PaymentMethod) -> ChargeContext:
        """The model's view of the next attempt; its rng is seeded by (seed, invoice, attempt number)."""
        facts = InvoiceFacts(id=inv.id, customer=inv.customer, amount=inv.amount_due, currency=inv.currency)
        return self.context_of(facts, pm, inv.attempts_made + 1, inv.first_failed_at, inv.last_decline)

    def context_of(
        self,
        facts: InvoiceFacts,
        pm: PaymentMethod,
        attempt: int,
        first_failed_at: datetime | None,
        last_decline: tuple[str, str] | None,
    ) -> ChargeContext:
        """The model's view of attempt `attempt` on what `facts` describe (an invoice, or a one-off PaymentIntent
        whose id stands in for the invoice's); the rng is seeded by (seed, that id, attempt number). A payment of
        no customer is decided in UTC."""
        b = self.billing
        now = b.clock.now()
        customer = b.state.customers.get(facts.customer)
        local = customer.local(now) if customer else now
        days = (now - first_failed_at).total_seconds() / 86400 if first_failed_at else None
        previous = last_decline[1] if last_decline and last_decline[0] == pm.id else None
        return ChargeContext(
            card=CardFacts(
                id=pm.id, brand=pm.brand, funding=pm.funding, country=pm.country, fingerprint=pm.fingerprint
            ),
            invoice=facts,
            attempt=attempt,
            days_since_first_failure=days,
            previous_decline=previous,
            day_of_month=local.day,
            local_hour=local.hour,
            rng=random.Random(f"{self.seed}:{facts.id}:{attempt}"),
        )

    def _record(
        self, inv: Invoice, charge: str | None, pm: PaymentMethod, out: Outcome, req: RequestRef, source: str
    ) -> None:
        self.ledger.append(
            LedgerEntry(
                at=self.billing.clock.now(),
                charge=charge,
                invoice=inv.id,
                payment_intent=inv.payment_intent,
                customer=inv.customer,
                payment_method=pm.id,
                amount=inv.amount_due,
                currency=inv.currency,
                idempotency_key=req.idempotency_key,
                api_key=req.api_key,
                source=source,
                attempt=inv.attempts_made,
                outcome="succeeded" if out.succeeded else "declined",
                code=out.code,
                decline_code=out.decline_code,
                advice_code=out.advice_code if charge else None,
                network_advice_code=out.network_advice_code if charge else None,
                network_decline_code=out.network_decline_code if charge else None,
                outcome_type=out.outcome_type if charge else None,
            )
        )

    def _succeeded(self, inv: Invoice, ch: Charge, req: RequestRef) -> None:
        b = self.billing
        pi = b.state.payment_intents[ch.payment_intent]
        pi.status, pi.latest_charge, pi.last_payment_method = "succeeded", ch.id, ch.payment_method
        pi.last_error, pi.last_error_charge = None, None
        inv.status, inv.amount_paid, inv.paid_at, inv.next_payment_attempt = "paid", inv.amount_due, ch.created, None
        self._emit_all(
            req,
            ("charge.succeeded", self._charge(ch)),
            ("payment_intent.succeeded", self._intent(pi)),
            ("invoice.paid", b.rendered(inv)),
            ("invoice.payment_succeeded", b.rendered(inv)),
        )
        sub = b.state.subscriptions.get(inv.subscription or "")
        if sub is not None and sub.status in ("past_due", "unpaid", "incomplete") and not self._open_invoices(sub):
            b.set_status(sub, "active", req)

    def _failed(self, inv: Invoice, ch: Charge, req: RequestRef, source: str) -> None:
        b, out = self.billing, ch.outcome
        pi = b.state.payment_intents[ch.payment_intent]
        pi.status, pi.latest_charge, pi.last_payment_method = "requires_payment_method", ch.id, ch.payment_method
        pi.last_error, pi.last_error_charge = out, ch.id
        self._declined(inv, ch.payment_method, out, source)
        self._emit_all(
            req,
            ("charge.failed", self._charge(ch)),
            ("payment_intent.payment_failed", self._intent(pi)),
            ("invoice.payment_failed", b.rendered(inv)),
        )
        self._past_due(inv, req)

    def _needs_authentication(
        self, inv: Invoice, pm: PaymentMethod, out: Outcome, req: RequestRef, source: str
    ) -> None:
        """Off-session and the issuer wants 3DS: no charge; the customer has to come back and authenticate."""
        b = self.billing
        pi = b.state.payment_intents[inv.payment_intent or ""]
        pi.status, pi.last_payment_method = "requires_payment_method", pm.id
        pi.last_error, pi.last_error_charge = out, None
        self._declined(inv, pm.id, out, source)
        self._emit_all(
            req,
            ("payment_intent.payment_failed", self._intent(pi)),
            ("invoice.payment_failed", b.rendered(inv)),
            ("invoice.payment_action_required", b.rendered(inv)),
        )
        self._past_due(inv, req)

    def _declined(self, inv: Invoice, pm_id: str, out: Outcome, source: str) -> None:
        inv.first_failed_at = inv.first_failed_at or self.billing.clock.now()
        inv.last_decline = (pm_id, out.decline_code or out.code or "generic_decline")
        if source != "api":
            self._schedule_smart_retry(inv, out)

    def _past_due(self, inv: Invoice, req: RequestRef) -> None:
        sub = self.billing.state.subscriptions.get(inv.subscription or "")
        if sub is not None and sub.status == "active":
            self.billing.set_status(sub, "past_due", req)

    def _charge(self, ch: Charge) -> Render:
        return lambda v: render.charge(self.billing.state, ch, v)

    def _intent(self, pi: PaymentIntent) -> Render:
        return lambda v: render.payment_intent(self.billing.state, pi, v)

    def _schedule_smart_retry(self, inv: Invoice, out: Outcome) -> None:
        if inv.smart_retries_done >= len(self.smart_retry_days) or out.decline_code in SMART_RETRY_HARD:
            inv.next_payment_attempt = None
            return
        assert inv.first_failed_at is not None
        inv.next_payment_attempt = inv.first_failed_at + timedelta(days=self.smart_retry_days[inv.smart_retries_done])
        self.billing.state.due.smart_retry(inv)

    def smart_retry(self, inv: Invoice) -> None:
        """Run the automatic retry that is due on `inv` (declines are expected and swallowed)."""
        inv.smart_retries_done += 1
        inv.next_payment_attempt = None
        with contextlib.suppress(StripeApiError):  # the decline is in the ledger and the events
            self.pay(inv.id, {}, AUTOMATIC, source="smart_retry")

    def _open_invoices(self, sub: Subscription) -> list[Invoice]:
        return [i for i in self.billing.state.invoices_of(sub.id) if i.status == "open"]

    def _emit_all(self, req: RequestRef, *events: tuple[str, Render]) -> None:
        for kind, obj in events:
            self.billing.emit(kind, obj, None, req)

    # -- subscriptions that charge -----------------------------------------------------------------------------
    def create_subscription(self, params: Params, req: RequestRef = AUTOMATIC) -> Subscription:
        """`customer`, `items[0][price_data][unit_amount|currency]` (or the simulator's `amount`/`currency`),
        `default_payment_method`, `default_source`. Charges the first invoice now; a decline leaves the
        subscription incomplete."""
        b = self.billing
        customer = b.customer(params.get("customer") or "")
        price = ((params.get("items") or [{}])[0] or {}).get("price_data") or {}
        amount = int(price.get("unit_amount") or params.get("amount") or 0)
        currency = price.get("currency") or params.get("currency") or "usd"
        now = b.clock.now()
        sub = b.new_subscription(
            customer.id,
            amount,
            currency,
            add_month(now),
            params.get("default_payment_method"),
            params.get("default_source"),
            created=now,
        )
        sub.status = "incomplete"
        b.emit("customer.subscription.created", lambda v: render.subscription(sub, v), None, req)
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
