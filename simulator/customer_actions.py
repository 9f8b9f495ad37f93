"""What a simulated customer does after reading a dunning email, on a running simulator.

`seen(sim, invoice, template, nth)` describes the email as the customer receives it (their local hour, the
failure's age, whether the card can ever work again, the amount) for `simulator.email_reaction.react`.
`act(sim, invoice, action)` carries the reaction out: `update_card` attaches a new card like the old one and
makes it the default (`payment_method.attached`, `customer.updated`); `pay_invoice` pays the hosted invoice
with a new card (ledger source `customer`: neither a platform retry nor the provider's). A new card is charged
like a fresh one by the outcome model (it has no decline on this invoice).
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime

from simulator.catalog import is_hard
from simulator.core import Simulator
from simulator.email_reaction import Action, EmailSeen
from simulator.errors import StripeApiError
from simulator.events import RequestRef
from simulator.records import PaymentMethod
from strategies.calendar import default_countries

CUSTOMER_SOURCE = "customer"


def seen(sim: Simulator, invoice_id: str, template: str, nth: int, at: datetime | None = None) -> EmailSeen | None:
    """The email as its reader sees it, sent `at` (default: now); None when there is nothing to act on (see
    `is_actionable`)."""
    with sim.lock:
        inv = sim.billing.invoice(invoice_id)
        if not is_actionable(sim, invoice_id):
            return None
        card = _card(sim, inv.customer)
        now = at or sim.now()
        local = now.astimezone(default_countries().of(card.country if card else None).zone())
        failed = inv.first_failed_at or now
        code = inv.last_decline[1] if inv.last_decline else ""
        return EmailSeen(template, local.hour, (now - failed).total_seconds() / 86400, nth, is_hard(code),
                         inv.amount_due)


def act(sim: Simulator, invoice_id: str, action: Action) -> bool:
    """Carry out the customer's reaction now; True when it happened (the invoice was still open)."""
    with sim.lock:
        inv = sim.billing.invoice(invoice_id)
        if not is_actionable(sim, invoice_id):
            return False
        pm = _new_card(sim, inv.customer)
        request = RequestRef(f"req_{uuid.uuid4().hex[:14]}", f"customer:{invoice_id}:{pm.id}")
        sim.billing.attach_payment_method(pm.id, inv.customer, request)
        if action == "update_card":
            sim.billing.update_customer(inv.customer, {"invoice_settings": {"default_payment_method": pm.id}},
                                        request)
        else:
            with contextlib.suppress(StripeApiError):  # a decline is in the ledger and the webhooks
                sim.charging.pay(invoice_id, {"payment_method": pm.id}, request, source=CUSTOMER_SOURCE)
        return True


def is_actionable(sim: Simulator, invoice_id: str) -> bool:
    """The invoice is still open and its subscription, if any, not canceled: a customer whose subscription
    ended (e.g. the dunning's final action) has nothing left to keep."""
    inv = sim.billing.invoice(invoice_id)
    sub = sim.state.subscriptions.get(inv.subscription or "")
    return inv.status == "open" and (sub is None or sub.status != "canceled")


def _card(sim: Simulator, customer_id: str) -> PaymentMethod | None:
    customer = sim.billing.customer(customer_id)
    pm_id = customer.default_payment_method or customer.default_source
    if pm_id is None:
        subs = [s for s in sim.state.subscriptions.values() if s.customer == customer_id]
        pm_id = next((s.default_payment_method or s.default_source for s in subs
                      if s.default_payment_method or s.default_source), None)
    return sim.billing.payment_method(pm_id) if pm_id else None


def _new_card(sim: Simulator, customer_id: str) -> PaymentMethod:
    """Another card of the same kind (brand, funding, country): a new number, so a new fingerprint."""
    old = _card(sim, customer_id)
    return sim.billing.new_payment_method(brand=old.brand if old else "visa", funding=old.funding if old else "credit",
                                          country=old.country if old else "US", last4="0077")
