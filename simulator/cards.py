"""Cards in every form a customer can update them: PaymentMethods, legacy card sources, SetupIntents, and the
card account updater.

- PaymentMethods (`pm_…`) are created from test numbers/tokens or cloned from Stripe's test ids on attach
  (`payment_method.attached`).
- Card sources (`card_…`, the Sources API) come from `tok_…` test tokens: `customer.source.created`, the first
  one becomes the customer's `default_source` (`customer.updated`), and expiry updates emit
  `customer.source.updated` with `previous_attributes`.
- SetupIntents save a card for off-session use: `setup_intent.created`, then `setup_intent.succeeded` on confirm.
- The card account updater (a simulator control) changes a card's expiry or number in place and makes it
  chargeable again: `payment_method.automatically_updated` (or `customer.source.updated` for a source).

Callers hold the simulator lock.
"""

from __future__ import annotations

import hashlib
from typing import Any

from simulator import render
from simulator.catalog import SUCCEED, KnownCard, forced_outcome, known_card
from simulator.clock import Clock
from simulator.errors import invalid_request, missing
from simulator.events import AUTOMATIC, Emit, RequestRef
from simulator.forms import integer, truthy
from simulator.ids import IdFactory
from simulator.records import Customer, PaymentMethod, SetupIntent
from simulator.state import State
from simulator.versions import BASIL_FROM, view_of

Params = dict[str, Any]
#: Customer diffs (`customer.updated` previous_attributes) compare this view: no embedded lists.
DIFF_VIEW = view_of(BASIL_FROM)


class Cards:
    def __init__(self, state: State, ids: IdFactory, clock: Clock, emit: Emit) -> None:
        self.state, self.ids, self.clock, self.emit = state, ids, clock, emit

    # -- lookups -----------------------------------------------------------------------------------------------
    def customer(self, customer_id: str) -> Customer:
        found = self.state.customers.get(customer_id)
        if found is None:
            raise missing("customer", customer_id)
        return found

    def payment_method(self, pm_id: str) -> PaymentMethod:
        """A PaymentMethod or a card source (Stripe accepts `card_…` wherever a payment method goes)."""
        found = self.state.payment_methods.get(pm_id)
        if found is None:
            raise missing("payment_method", pm_id)
        return found

    def source(self, customer_id: str, card_id: str) -> PaymentMethod:
        self.customer(customer_id)
        found = self.state.payment_methods.get(card_id)
        if found is None or not found.source or found.customer != customer_id:
            raise missing("source", card_id)
        return found

    def customer_updated(self, c: Customer, before: render.Obj, req: RequestRef) -> None:
        """Emit `customer.updated` when something changed since `before` (a DIFF_VIEW rendering)."""
        after = render.customer(self.state, c, DIFF_VIEW)
        previous = {key: before[key] for key in after if before.get(key) != after[key]}
        if previous:
            self.emit("customer.updated", lambda v: render.customer(self.state, c, v), previous, req)

    # -- payment methods ---------------------------------------------------------------------------------------
    def create_payment_method(self, params: Params) -> PaymentMethod:
        """`card[number]` (Stripe test numbers), `card[token]` (`tok_…`), or simulator fields `card[brand]`,
        `card[funding]`, `card[country]`; `metadata[sim_force]` forces every charge ("succeed", "sca" or a code)."""
        if params.get("type", "card") != "card":
            raise invalid_request("Only card payment methods are simulated.", param="type")
        card = params.get("card") or {}
        known = known_card(card.get("number") or card.get("token") or "pm_card_visa")
        forced = (params.get("metadata") or {}).get("sim_force") or (known.forced_decline if known else None)
        return self.new_payment_method(
            brand=card.get("brand") or (known.brand if known else "visa"),
            funding=card.get("funding", "credit"),
            country=card.get("country", "US"),
            last4=known.last4 if known else "4242",
            forced=forced_outcome(forced),
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
        source: bool = False,
    ) -> PaymentMethod:
        pm_id = self.ids.new("card" if source else "pm")
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
            source=source,
        )
        self.state.payment_methods[pm.id] = pm
        return pm

    def _from_known(self, known: KnownCard, *, source: bool = False) -> PaymentMethod:
        return self.new_payment_method(
            brand=known.brand,
            funding="credit",
            country="US",
            last4=known.last4,
            forced=known.forced_decline,
            source=source,
        )

    def attach_payment_method(self, pm_id: str, customer_id: str, req: RequestRef = AUTOMATIC) -> PaymentMethod:
        """Attach; a Stripe test id (`pm_card_visa`, `pm_card_chargeDeclinedInsufficientFunds`, …) is cloned
        into a fresh payment method first, as Stripe does."""
        self.customer(customer_id)
        known = known_card(pm_id)
        pm = self._from_known(known) if known is not None else self.payment_method(pm_id)
        if pm.customer and pm.customer != customer_id:
            raise invalid_request("The payment method is attached to another customer.", param="customer")
        if pm.customer != customer_id:
            pm.customer = customer_id
            self.emit("payment_method.attached", lambda v: render.payment_method(pm), None, req)
        return pm

    # -- card sources (the legacy Sources API) -----------------------------------------------------------------
    def create_source(self, customer_id: str, params: Params, req: RequestRef = AUTOMATIC) -> PaymentMethod:
        """`source=tok_visa` (or another test token, or `source[number]=…`): a `card_…` on the customer
        (`customer.source.created`). The first card becomes the `default_source` (`customer.updated`)."""
        c = self.customer(customer_id)
        before = render.customer(self.state, c, DIFF_VIEW)
        pm = self.new_source(c, params)
        self.emit("customer.source.created", lambda v: render.card(pm), None, req)
        self.customer_updated(c, before, req)
        return pm

    def new_source(self, c: Customer, params: Params) -> PaymentMethod:
        """The card of the token in `params["source"]`, attached to `c` (its default source if it had none);
        no events."""
        token = params.get("source")
        number = token.get("number") if isinstance(token, dict) else token
        known = known_card(str(number or ""))
        if known is None:
            if isinstance(number, str) and number.startswith("tok_"):
                raise missing("token", number, param="source")
            raise invalid_request("Missing required param: source.", code="parameter_missing", param="source")
        pm = self._from_known(known, source=True)
        pm.customer = c.id
        pm.metadata.update(params.get("metadata") or {})
        c.default_source = c.default_source or pm.id
        return pm

    def update_source(
        self, customer_id: str, card_id: str, params: Params, req: RequestRef = AUTOMATIC
    ) -> PaymentMethod:
        """`exp_month`, `exp_year`, `metadata` → `customer.source.updated` with `previous_attributes`."""
        pm = self.source(customer_id, card_id)
        before = render.card(pm)
        for name in ("exp_month", "exp_year"):
            if params.get(name) is not None:
                setattr(pm, name, integer(params[name], name))
        pm.metadata.update(params.get("metadata") or {})
        after = render.card(pm)
        previous = {key: before[key] for key in after if before[key] != after[key]}
        if previous:
            self.emit("customer.source.updated", lambda v: render.card(pm), previous, req)
        return pm

    # -- setup intents -----------------------------------------------------------------------------------------
    def setup_intent(self, seti_id: str) -> SetupIntent:
        found = self.state.setup_intents.get(seti_id)
        if found is None:
            raise missing("setup_intent", seti_id)
        return found

    def create_setup_intent(self, params: Params, req: RequestRef = AUTOMATIC) -> SetupIntent:
        """`customer`, `payment_method` (a test id is cloned), `usage` (default off_session), `confirm`."""
        customer = params.get("customer")
        if customer:
            self.customer(customer)
        pm_id = params.get("payment_method")
        known = known_card(pm_id) if pm_id else None
        pm = self._from_known(known) if known is not None else (self.payment_method(pm_id) if pm_id else None)
        si = SetupIntent(
            id=self.ids.new("seti"),
            created=self.clock.now(),
            customer=customer or None,
            payment_method=pm.id if pm else None,
            usage=params.get("usage") or "off_session",
            status="requires_confirmation" if pm else "requires_payment_method",
            metadata=dict(params.get("metadata") or {}),
        )
        self.state.setup_intents[si.id] = si
        self.emit("setup_intent.created", lambda v: render.setup_intent(si), None, req)
        if truthy(params.get("confirm", False)):
            self.confirm_setup_intent(si.id, {}, req)
        return si

    def confirm_setup_intent(self, seti_id: str, params: Params, req: RequestRef = AUTOMATIC) -> SetupIntent:
        """Saving a card always succeeds here (no 3DS on setup): the card is attached to the customer and
        `setup_intent.succeeded` is emitted."""
        si = self.setup_intent(seti_id)
        if si.status == "succeeded":
            raise invalid_request(
                "You cannot confirm this SetupIntent because it has already succeeded.",
                code="setup_intent_unexpected_state",
            )
        pm_id = params.get("payment_method") or si.payment_method
        if not pm_id:
            raise invalid_request(
                "You cannot confirm this SetupIntent because it's missing a payment method.",
                code="setup_intent_unexpected_state",
                param="payment_method",
            )
        pm = self.attach_payment_method(pm_id, si.customer, req) if si.customer else self.payment_method(pm_id)
        si.payment_method, si.status = pm.id, "succeeded"
        self.emit("setup_intent.succeeded", lambda v: render.setup_intent(si), None, req)
        return si

    # -- the card account updater ------------------------------------------------------------------------------
    def card_updater(
        self,
        pm_id: str,
        *,
        exp_month: int | None = None,
        exp_year: int | None = None,
        last4: str | None = None,
        outcome: str | None = SUCCEED,
        req: RequestRef = AUTOMATIC,
    ) -> PaymentMethod:
        """The network's updater replaced the card's expiry (or number) in place; charges now get `outcome`
        ("succeed" by default; None hands the card back to the model)."""
        pm = self.payment_method(pm_id)
        if exp_month is None and exp_year is None and last4 is None:
            exp_year = max(pm.exp_year, self.clock.now().year) + 3
        before = render.card(pm) if pm.source else render.payment_method(pm)["card"]
        pm.exp_month = exp_month if exp_month is not None else pm.exp_month
        pm.exp_year = exp_year if exp_year is not None else pm.exp_year
        if last4 is not None:
            pm.last4 = last4
            pm.fingerprint = hashlib.sha256(f"{pm.brand}:{last4}:{pm.id}:updated".encode()).hexdigest()[:16]
        pm.forced = forced_outcome(outcome)
        if pm.source:
            after = render.card(pm)
            previous = {key: before[key] for key in after if before[key] != after[key]}
            self.emit("customer.source.updated", lambda v: render.card(pm), previous, req)
        else:
            card = render.payment_method(pm)["card"]
            changed = {key: before[key] for key in card if before[key] != card[key]}
            updated = "payment_method.automatically_updated"
            self.emit(updated, lambda v: render.payment_method(pm), {"card": changed}, req)
        return pm

