"""What the provider dialects (simulator/adyen.py, simulator/braintree.py) share with the Stripe-compatible
simulator: a seeded population (the same `PopulationMix` of countries, brands and funding), the same outcome model
(`simulator/models.py`, decided from the same `ChargeContext`: card facts, attempt number, days since the first
failure, the previous decline on that card, local day and hour, an rng seeded per (seed, invoice, attempt)), and
the same `Ledger` (`simulator/ledger.py`), so a run's evaluation (recovery, double charges, attempts per invoice)
reads every provider alike. Outcomes are in the model's (Stripe's) vocabulary; each dialect translates them into
its provider's codes. A card may be forced (a decline code or `succeed`), as the Stripe simulator's test cards."""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from simulator.catalog import SUCCEED, declined
from simulator.ledger import Ledger, LedgerEntry
from simulator.models import load_model
from simulator.outcomes import CardFacts, ChargeContext, InvoiceFacts, Outcome, OutcomeModel
from simulator.population import PopulationMix

T = TypeVar("T")


@dataclass
class Card:
    id: str
    customer: str
    brand: str = "visa"
    funding: str = "credit"
    country: str = "US"
    utc_offset_hours: float = 0.0
    fingerprint: str = ""
    email: str | None = None
    #: a decline code (the model's vocabulary) every charge gets, `succeed`, or None: the outcome model decides
    forced: str | None = None


@dataclass
class Bill:
    """One thing to be paid (an Adyen merchantReference, a Braintree subscription's billing period)."""

    invoice: str
    attempts: int = 0
    first_failed_at: datetime | None = None
    last_decline: tuple[str, str] | None = None  # (card, decline code)
    paid: bool = False


class PaymentBook:
    """Decides every charge attempt a dialect makes and writes it to the ledger; thread-safe."""

    def __init__(self, model: str | OutcomeModel = "default", seed: int = 0,
                 clock: Callable[[], datetime] | None = None, mix: PopulationMix | None = None) -> None:
        self.model = load_model(model) if isinstance(model, str) else model
        self.seed, self.mix = seed, mix or PopulationMix()
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.ledger = Ledger()
        self.cards: dict[str, Card] = {}
        self.bills: dict[str, Bill] = {}
        self._lock = threading.RLock()
        self._rng = random.Random(f"{seed}:population")

    def now(self) -> datetime:
        return self.clock()

    def add_card(self, card_id: str, customer: str, **facts: object) -> Card:
        card = Card(card_id, customer, **facts)  # type: ignore[arg-type]
        card.fingerprint = card.fingerprint or hashlib.sha256(f"{self.seed}:{card_id}".encode()).hexdigest()[:16]
        with self._lock:
            self.cards[card_id] = card
        return card

    def populate(self, n: int, prefix: str) -> list[Card]:
        """`n` customers with one stored card each, drawn from the population mix (seeded)."""
        cards = []
        for i in range(1, n + 1):
            country = _pick(self._rng, {c: w for c, (w, _, _) in self.mix.countries.items()})
            cards.append(self.add_card(
                f"{prefix}-card-{i}", f"{prefix}-{i}", brand=_pick(self._rng, self.mix.brands),
                funding=_pick(self._rng, self.mix.funding), country=country,
                utc_offset_hours=self.mix.countries[country][1], email=f"{prefix}-{i}@example.test"))
        return cards

    def currency_of(self, card: Card) -> str:
        return self.mix.countries.get(card.country, (0.0, 0.0, "usd"))[2]

    def force(self, card_id: str, outcome: str | None) -> None:
        """Every later charge of this card: the decline `outcome` (a code of data/declines.json), `succeed`, or
        (None) back to the outcome model."""
        if outcome not in (None, SUCCEED):
            declined(outcome, with_network_advice=False)  # an unknown code fails here, not at the charge
        self.cards[card_id].forced = outcome

    def bill(self, invoice: str) -> Bill:
        with self._lock:
            return self.bills.setdefault(invoice, Bill(invoice))

    def attempt(self, invoice: str, card_id: str, amount: int, currency: str, *, source: str,
                charge_id: str | None, idempotency_key: str | None = None) -> Outcome:
        """Decide one charge attempt on `invoice` with `card_id` and write it to the ledger."""
        with self._lock:
            card, bill, now = self.cards[card_id], self.bill(invoice), self.now()
            outcome = self._decide(card, bill, amount, currency, now)
            bill.attempts += 1
            if outcome.succeeded:
                bill.paid = True
            else:
                bill.first_failed_at = bill.first_failed_at or now
                bill.last_decline = (card.id, outcome.decline_code or outcome.code or "generic_decline")
            self.ledger.append(LedgerEntry(
                at=now, charge=charge_id, invoice=invoice, customer=card.customer, payment_method=card.id,
                amount=amount, currency=currency, idempotency_key=idempotency_key, source=source,
                attempt=bill.attempts, outcome="succeeded" if outcome.succeeded else "declined", code=outcome.code,
                decline_code=outcome.decline_code, advice_code=outcome.advice_code,
                network_advice_code=outcome.network_advice_code, network_decline_code=outcome.network_decline_code,
                outcome_type=outcome.outcome_type))
            return outcome

    def _decide(self, card: Card, bill: Bill, amount: int, currency: str, now: datetime) -> Outcome:
        if card.forced is not None:
            return Outcome.success() if card.forced == SUCCEED else declined(
                card.forced, with_network_advice=card.brand == "mastercard")
        local = now + timedelta(hours=card.utc_offset_hours)
        days = (now - bill.first_failed_at).total_seconds() / 86400 if bill.first_failed_at else None
        previous = bill.last_decline[1] if bill.last_decline and bill.last_decline[0] == card.id else None
        return self.model.decide(ChargeContext(
            card=CardFacts(id=card.id, brand=card.brand, funding=card.funding, country=card.country,
                           fingerprint=card.fingerprint),
            invoice=InvoiceFacts(id=bill.invoice, customer=card.customer, amount=amount, currency=currency),
            attempt=bill.attempts + 1, days_since_first_failure=days, previous_decline=previous,
            day_of_month=local.day, local_hour=local.hour, rng=random.Random(f"{self.seed}:{bill.invoice}:"
                                                                             f"{bill.attempts + 1}")))

    def double_charges(self) -> dict[str, int]:
        return self.ledger.double_charges()


def _pick(rng: random.Random, weights: dict[T, float]) -> T:
    return rng.choices(list(weights), weights=list(weights.values()))[0]
