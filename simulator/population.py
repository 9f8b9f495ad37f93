"""A seeded population of customers with cards and monthly subscriptions, and the renewals that bill them.

Mixes (all configurable through `PopulationMix`): countries with their UTC offsets and currencies, card brands
(about a third Mastercard, so Merchant Advice Codes show up), card funding (Recurly 2014-16: 61 % credit,
39 % debit), plan prices. Billing anchors are spread over the month after the clock's current time.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

from simulator.billing import Billing
from simulator.charging import Charging
from simulator.clock import SimClock
from simulator.records import Customer

T = TypeVar("T")
_FIRST = ("ada", "grace", "alan", "edsger", "barbara", "ken", "margaret", "linus", "radia", "donald", "frances")
_LAST = ("lovelace", "hopper", "turing", "dijkstra", "liskov", "thompson", "hamilton", "torvalds", "perlman")


class PopulationMix(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: country → (weight, UTC offset hours, currency)
    countries: dict[str, tuple[float, float, str]] = {
        "US": (0.45, -5, "usd"),
        "CA": (0.05, -5, "cad"),
        "GB": (0.12, 0, "gbp"),
        "DE": (0.10, 1, "eur"),
        "FR": (0.07, 1, "eur"),
        "BR": (0.06, -3, "brl"),
        "IN": (0.05, 5.5, "inr"),
        "AU": (0.10, 10, "aud"),
    }
    brands: dict[str, float] = {"visa": 0.55, "mastercard": 0.33, "amex": 0.08, "discover": 0.04}
    funding: dict[str, float] = {"credit": 0.61, "debit": 0.37, "prepaid": 0.02}
    prices: dict[int, float] = {900: 0.5, 2900: 0.35, 9900: 0.15}  # minor units → weight


def _pick(rng: random.Random, weights: dict[T, float]) -> T:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


class Population:
    def __init__(self, billing: Billing, charging: Charging, seed: int, mix: PopulationMix | None = None) -> None:
        self.billing, self.charging, self.mix = billing, charging, mix or PopulationMix()
        self._rng = random.Random(f"{seed}:population")

    def generate(self, n: int) -> list[str]:
        """Create `n` customers, each with an attached default card and an active subscription; no events."""
        return [self._one().id for _ in range(n)]

    def _one(self) -> Customer:
        b, rng, mix = self.billing, self._rng, self.mix
        country = _pick(rng, {c: w for c, (w, _, _) in mix.countries.items()})
        _, offset, currency = mix.countries[country]
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        now = b.clock.now()
        c = Customer(
            id=b.ids.new("cus"),
            created=now - timedelta(days=rng.randint(35, 900)),
            email=f"{first}.{last}.{len(b.state.customers) + 1}@example.test",
            name=f"{first.title()} {last.title()}",
            country=country,
            utc_offset_hours=offset,
        )
        b.state.customers[c.id] = c
        pm = b.new_payment_method(
            brand=_pick(rng, mix.brands),
            funding=_pick(rng, mix.funding),
            country=country,
            last4=f"{rng.randint(0, 9999):04d}",
        )
        pm.customer, c.default_payment_method = c.id, pm.id
        anchor = now + timedelta(seconds=rng.randint(60, 30 * 86400))
        b.new_subscription(c.id, _pick(rng, mix.prices), currency, anchor, created=c.created)
        return c

    def next_due(self) -> datetime | None:
        """The earliest renewal or Smart Retry waiting on the clock."""
        return self.billing.state.due.next_due(self.billing.state)

    def advance(self, to: datetime) -> int:
        """Run every renewal and Smart Retry due up to `to`, in time order, moving a simulated clock along;
        returns how many ran. With a real clock only what is already due runs.

        Within one due time, renewals run first, then Smart Retries, each by id. What is due comes from the
        state's `DueIndex` (a heap), not from a scan of every subscription and invoice: at 10,000 customers the
        scans made each simulated hour cost as much as the rest of the step."""
        clock = self.billing.clock
        limit = to if isinstance(clock, SimClock) else min(to, clock.now())
        state = self.billing.state
        ran = 0
        while (found := state.due.pop_due(state, limit)) is not None:
            due, subs, retries = found
            if isinstance(clock, SimClock):
                clock.set(due)
            for sub in subs:
                self.charging.renew(sub)
            for inv in retries:
                self.charging.smart_retry(inv)
            ran += len(subs) + len(retries)
        if isinstance(clock, SimClock):
            clock.set(to)
        return ran
