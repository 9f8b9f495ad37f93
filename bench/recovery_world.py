"""The simulated world of the recovery evaluation: customers, renewals, paired luck, and the fixed baselines.

Everything is in process and seeded. Each customer renews monthly on their own anchor; the outcome model
(`simulator.models`) decides every charge from a `random.Random` seeded by (seed, customer, invoice ordinal,
attempt number), so every approach meets the same declines on the same renewals and the same draw on its k-th
attempt (common random numbers); only timing and choices differ. A retry on the card that declined keeps its
decline reason (the model's rule); a new card (after a customer acts on an email) is charged like a fresh one.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from payrisk.demo.network import AttemptRow
from simulator.catalog import declines, is_hard
from simulator.models import load_model
from simulator.outcomes import CardFacts, ChargeContext, InvoiceFacts, Outcome, OutcomeModel
from simulator.population import PopulationMix

START = datetime(2026, 3, 1, tzinfo=UTC)
#: The Stripe-recommended fixed schedule: 8 tries within 14 days (days after the first failure).
EIGHT_IN_FOURTEEN = (1, 2, 4, 6, 8, 10, 12, 14)
#: Kill Bill's default retry schedule: days 8, 16 and 24 after the failure.
KILL_BILL = (8, 16, 24)
STOP_ADVICE = frozenset({"03", "21"})


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    country: str
    utc_offset: float
    currency: str
    brand: str
    funding: str
    price: int
    since: datetime
    anchor: datetime  # the first renewal in the run


@dataclass(frozen=True, slots=True)
class Failure:
    """A renewal whose first attempt declined."""

    customer: Customer
    invoice: str
    ordinal: int
    at: datetime
    outcome: Outcome

    @property
    def code(self) -> str:
        return self.outcome.decline_code or self.outcome.code or "generic_decline"

    @property
    def stops(self) -> bool:
        """The card said never again: a hard decline or Mastercard advice 03/21."""
        return is_hard(self.code) or self.outcome.network_advice_code in STOP_ADVICE


@dataclass(slots=True)
class Tally:
    """One approach's result."""

    name: str
    failed: int = 0
    failed_amount: int = 0
    recovered: int = 0
    recovered_amount: int = 0
    retries: int = 0
    retries_on_hard: int = 0
    emails: int = 0
    customer_actions: int = 0
    attempts: list[AttemptRow] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.recovered_amount / self.failed_amount if self.failed_amount else 0.0


class World:
    def __init__(self, model_name: str, seed: int, customers: int, days: int) -> None:
        self.model: OutcomeModel = load_model(model_name)
        self.seed, self.days = seed, days
        self.end = START + timedelta(days=days)
        rng = random.Random(f"{seed}:customers")
        self.customers = [_customer(rng, n, PopulationMix()) for n in range(customers)]

    def failures(self) -> list[Failure]:
        """Every renewal in the run whose first attempt declined, in time order."""
        found = []
        for c in self.customers:
            at, ordinal = c.anchor, 0
            while at < self.end:
                invoice = f"in_{c.id}_{ordinal}"
                outcome = self.charge(c, invoice, ordinal, 1, at, None, None)
                if not outcome.succeeded:
                    found.append(Failure(c, invoice, ordinal, at, outcome))
                at, ordinal = at + timedelta(days=30), ordinal + 1
        return sorted(found, key=lambda f: (f.at, f.invoice))

    def charge(self, c: Customer, invoice: str, ordinal: int, attempt: int, at: datetime,
               first_failed_at: datetime | None, previous: str | None, card: str = "card0") -> Outcome:
        local = at + timedelta(hours=c.utc_offset)
        ctx = ChargeContext(
            card=CardFacts(id=card, brand=c.brand, funding=c.funding, country=c.country,
                           fingerprint=fingerprint(c, card)),
            invoice=InvoiceFacts(id=invoice, customer=c.id, amount=c.price, currency=c.currency),
            attempt=attempt,
            days_since_first_failure=(at - first_failed_at).total_seconds() / 86400 if first_failed_at else None,
            previous_decline=previous, day_of_month=local.day, local_hour=local.hour,
            rng=random.Random(f"{self.seed}:{c.id}:{ordinal}:{attempt}:{card}"))
        return self.model.decide(ctx)


def fingerprint(c: Customer, card: str) -> str:
    return hashlib.sha256(f"{c.id}:{card}".encode()).hexdigest()[:16]


def run_fixed(world: World, failures: list[Failure], name: str, days: tuple[float, ...]) -> Tally:
    """Retry every failed renewal on the given days after the failure, whatever the decline said."""
    tally = Tally(name)
    for f in failures:
        tally.failed, tally.failed_amount = tally.failed + 1, tally.failed_amount + f.customer.price
        tally.attempts.append(AttemptRow(card=fingerprint(f.customer, "card0"), brand=f.customer.brand, at=f.at,
                                         declined=True))
        for n, day in enumerate(days, start=2):
            at = f.at + timedelta(days=day)
            outcome = world.charge(f.customer, f.invoice, f.ordinal, n, at, f.at, f.code)
            tally.retries += 1
            tally.retries_on_hard += f.stops
            tally.attempts.append(AttemptRow(card=fingerprint(f.customer, "card0"), brand=f.customer.brand, at=at,
                                             declined=not outcome.succeeded))
            if outcome.succeeded:
                tally.recovered, tally.recovered_amount = tally.recovered + 1, tally.recovered_amount + f.customer.price
                break
    return tally


def decline_json(outcome: Outcome, c: Customer, card: str) -> dict[str, object]:
    """The decline as the platform's normalized events carry it."""
    fields = {"error_code": outcome.code, "decline_code": outcome.decline_code, "advice_code": outcome.advice_code,
              "network_advice_code": outcome.network_advice_code,
              "network_decline_code": outcome.network_decline_code, "outcome_type": outcome.outcome_type,
              "card_brand": c.brand, "card_fingerprint": fingerprint(c, card), "card_country": c.country}
    return {k: v for k, v in fields.items() if v is not None}


def _customer(rng: random.Random, n: int, mix: PopulationMix) -> Customer:
    def pick(weights: dict[str, float] | dict[int, float]) -> object:
        return rng.choices(list(weights), weights=list(weights.values()))[0]

    country = str(pick({k: w for k, (w, _, _) in mix.countries.items()}))
    _, offset, currency = mix.countries[country]
    return Customer(
        id=f"cus_{n:05d}", country=country, utc_offset=offset, currency=currency, brand=str(pick(mix.brands)),
        funding=str(pick(mix.funding)), price=int(pick(mix.prices)),  # type: ignore[call-overload]
        since=START - timedelta(days=rng.randint(35, 900)),
        anchor=START + timedelta(seconds=rng.randint(60, 30 * 86400)))


assert "insufficient_funds" in declines()  # the catalog the models draw from
