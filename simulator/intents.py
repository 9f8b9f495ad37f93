"""One-off PaymentIntents (`POST /v1/payment_intents`, `POST /v1/payment_intents/{id}/confirm`): a payment with
no invoice, as `stripe trigger charge.failed` makes one.

- Create: `amount`, `currency` (required), `customer`, `payment_method` (a Stripe test id such as
  `pm_card_visa_chargeDeclined` is cloned into a fresh `pm_…`, as attach does), `confirm`, `off_session` (only
  with `confirm=true`), `description`, `metadata`, `setup_future_usage`: `payment_intent.created`, then the
  confirmation when `confirm=true`.
- Confirm: one attempt, decided like an invoice's (a card's forced outcome, else the model, whose
  `ctx.invoice.id` is the PaymentIntent's id). A success: `charge.succeeded`, `payment_intent.succeeded` (and,
  with `setup_future_usage` and a customer, the card is attached: `payment_method.attached`). A decline: a failed
  Charge, `charge.failed`, `payment_intent.payment_failed`, and the 402 `card_error`, after the state, ledger and
  events are updated (as Stripe does). Authentication required: off session, no charge, the PaymentIntent goes back
  to `requires_payment_method` (`payment_intent.payment_failed`, 402 `authentication_required`); on session, it
  waits in `requires_action` (`payment_intent.requires_action`, 200), which nothing here can complete.
- Confirming an invoice's PaymentIntent pays the invoice (`Charging.pay`).

Every attempt is in the ledger with `invoice: ""` and `payment_intent`. Callers hold the simulator lock.
"""

from __future__ import annotations

from typing import Any

from simulator import render
from simulator.billing import Billing
from simulator.catalog import AUTHENTICATION_REQUIRED, known_card
from simulator.charging import Charging
from simulator.errors import StripeApiError, invalid_request, missing
from simulator.events import AUTOMATIC, Render, RequestRef
from simulator.forms import integer, truthy
from simulator.ledger import LedgerEntry
from simulator.outcomes import InvoiceFacts, Outcome
from simulator.records import Charge, PaymentIntent, PaymentMethod

Params = dict[str, Any]


def _unexpected_state(message: str, param: str | None = None) -> StripeApiError:
    return invalid_request(message, code="payment_intent_unexpected_state", param=param)


class Intents:
    def __init__(self, billing: Billing, charging: Charging) -> None:
        self.billing, self.charging = billing, charging

    def payment_intent(self, pi_id: str) -> PaymentIntent:
        found = self.billing.state.payment_intents.get(pi_id)
        if found is None:
            raise missing("payment_intent", pi_id)
        return found

    def create(self, params: Params, req: RequestRef = AUTOMATIC) -> PaymentIntent:
        b = self.billing
        for name in ("amount", "currency"):
            if params.get(name) in (None, ""):
                raise invalid_request(f"Missing required param: {name}.", code="parameter_missing", param=name)
        amount = integer(params["amount"], "amount")
        if amount < 1:
            raise invalid_request("This value must be greater than or equal to 1.", param="amount")
        customer = b.customer(params["customer"]).id if params.get("customer") else None
        confirm = truthy(params.get("confirm", False))
        if params.get("off_session") not in (None, "") and not confirm:
            raise invalid_request("off_session can only be used when confirm=true.", param="off_session")
        pm = self._payment_method(params.get("payment_method"), customer)
        pi = PaymentIntent(
            id=b.ids.new("pi"),
            created=b.clock.now(),
            invoice=None,
            customer=customer,
            amount=amount,
            currency=str(params["currency"]).lower(),
            status="requires_confirmation" if pm else "requires_payment_method",
            last_payment_method=pm.id if pm else None,
            description=params.get("description"),
            setup_future_usage=params.get("setup_future_usage") or None,
            metadata=dict(params.get("metadata") or {}),
        )
        b.state.payment_intents[pi.id] = pi
        b.emit("payment_intent.created", self._intent(pi), None, req)
        if confirm:
            self._confirm(pi, pm, truthy(params.get("off_session", False)), req)
        return pi

    def confirm(self, pi_id: str, params: Params, req: RequestRef = AUTOMATIC) -> PaymentIntent:
        """`payment_method` (replaces the PaymentIntent's) and `off_session`."""
        pi = self.payment_intent(pi_id)
        if pi.invoice is not None:  # the invoice's PaymentIntent: confirming it pays the invoice
            self.charging.pay(pi.invoice, {"payment_method": params.get("payment_method")}, req)
            return pi
        if pi.status in ("succeeded", "canceled", "requires_action"):
            raise _unexpected_state(
                f"You cannot confirm this PaymentIntent because it has a status of {pi.status}."
            )
        pm = self._payment_method(params.get("payment_method") or pi.last_payment_method, pi.customer)
        if pm is None:
            raise _unexpected_state(
                "You cannot confirm this PaymentIntent because it's missing a payment method.", "payment_method"
            )
        self._confirm(pi, pm, truthy(params.get("off_session", False)), req)
        return pi

    def _payment_method(self, pm_id: str | None, customer: str | None) -> PaymentMethod | None:
        """The payment method to charge: a Stripe test id is cloned (not attached); one attached to a customer
        may only pay for that customer."""
        if not pm_id:
            return None
        known = known_card(pm_id)
        if known is not None:
            return self.billing.new_payment_method(
                brand=known.brand, funding="credit", country="US", last4=known.last4, forced=known.forced_decline
            )
        pm = self.billing.payment_method(pm_id)
        if pm.customer is not None and pm.customer != customer:
            raise invalid_request(
                f"The payment method {pm.id} is attached to customer {pm.customer}; pass customer={pm.customer} "
                "to use it.",
                param="payment_method",
            )
        return pm

    # -- one attempt -------------------------------------------------------------------------------------------
    def _confirm(self, pi: PaymentIntent, pm: PaymentMethod | None, off_session: bool, req: RequestRef) -> None:
        if pm is None:
            raise _unexpected_state(
                "You cannot confirm this PaymentIntent because it's missing a payment method.", "payment_method"
            )
        pi.last_payment_method = pm.id
        facts = InvoiceFacts(id=pi.id, customer=pi.customer or "", amount=pi.amount, currency=pi.currency)
        context = self.charging.context_of
        outcome = self.charging.decide(
            pm, lambda: context(facts, pm, pi.attempts_made + 1, pi.first_failed_at, pi.last_decline)
        )
        if outcome.decline_code == AUTHENTICATION_REQUIRED and not off_session:
            pi.status = "requires_action"  # on session: the customer has to authenticate (3DS); not an attempt
            self.billing.emit("payment_intent.requires_action", self._intent(pi), None, req)
            return
        pi.attempts_made += 1
        charge = None if outcome.decline_code == AUTHENTICATION_REQUIRED else self._charge(pi, pm, outcome)
        self._record(pi, charge, pm, outcome, req)
        if outcome.succeeded:
            self._succeeded(pi, pm, charge, req)
            return
        pi.status, pi.last_error = "requires_payment_method", outcome
        pi.last_error_charge = charge.id if charge else None
        pi.first_failed_at = pi.first_failed_at or self.billing.clock.now()
        pi.last_decline = (pm.id, outcome.decline_code or outcome.code or "generic_decline")
        if charge is not None:
            self.billing.emit("charge.failed", self._charge_render(charge), None, req)
        self.billing.emit("payment_intent.payment_failed", self._intent(pi), None, req)
        raise StripeApiError(402, render.payment_error(self.billing.state, pi, in_response=True) or {})

    def _charge(self, pi: PaymentIntent, pm: PaymentMethod, outcome: Outcome) -> Charge:
        b = self.billing
        charge = Charge(
            id=b.ids.new("ch"),
            created=b.clock.now(),
            invoice=None,
            customer=pi.customer,
            payment_intent=pi.id,
            payment_method=pm.id,
            amount=pi.amount,
            currency=pi.currency,
            outcome=outcome,
            description=pi.description,
        )
        b.state.charges[charge.id] = charge
        pi.charges.append(charge.id)
        pi.latest_charge = charge.id
        return charge

    def _succeeded(self, pi: PaymentIntent, pm: PaymentMethod, charge: Charge | None, req: RequestRef) -> None:
        b = self.billing
        pi.status, pi.last_error, pi.last_error_charge = "succeeded", None, None
        if charge is not None:
            b.emit("charge.succeeded", self._charge_render(charge), None, req)
        b.emit("payment_intent.succeeded", self._intent(pi), None, req)
        if pi.setup_future_usage and pi.customer and pm.customer is None:
            b.attach_payment_method(pm.id, pi.customer, req)

    def _record(
        self, pi: PaymentIntent, charge: Charge | None, pm: PaymentMethod, out: Outcome, req: RequestRef
    ) -> None:
        self.charging.ledger.append(
            LedgerEntry(
                at=self.billing.clock.now(),
                charge=charge.id if charge else None,
                invoice="",
                payment_intent=pi.id,
                customer=pi.customer or "",
                payment_method=pm.id,
                amount=pi.amount,
                currency=pi.currency,
                idempotency_key=req.idempotency_key,
                api_key=req.api_key,
                source="api",
                attempt=pi.attempts_made,
                outcome="succeeded" if out.succeeded else "declined",
                code=out.code,
                decline_code=out.decline_code,
                advice_code=out.advice_code if charge else None,
                network_advice_code=out.network_advice_code if charge else None,
                network_decline_code=out.network_decline_code if charge else None,
                outcome_type=out.outcome_type if charge else None,
            )
        )

    def _intent(self, pi: PaymentIntent) -> Render:
        return lambda v: render.payment_intent(self.billing.state, pi, v)

    def _charge_render(self, ch: Charge) -> Render:
        return lambda v: render.charge(self.billing.state, ch, v)
