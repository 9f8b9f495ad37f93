"""Learned retry timing: the chance that a retry succeeds, as a function of when it runs (pure, deterministic).

`TimingPrior` (``strategies/timing_prior.json``) holds the published shape: success per decline reason at its
peak, a curve over days since the failure, local hour bands, decay per attempt, pay days. `fit(prior, ledger)`
turns a tenant's attempt ledger (plain `Observation` values; the caller reads them) into a `TimingModel`: each
cell (reason × days-since-failure bucket, reason × funding, local hour band) gets the factor
``(successes + k) / (expected + k)`` where *expected* is what the prior predicted for the same attempts and
*k* the prior's `strength` — a Poisson–gamma shrinkage: thin data leaves the prior alone, a thousand attempts
move it. Same ledger → same model.
"""

from __future__ import annotations

import bisect
import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from strategies.files import PACKAGE_DIR, read_model

PRIOR_FILE = PACKAGE_DIR / "timing_prior.json"
Curve = tuple[tuple[float, float], ...]


class PaydayPrior(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    reasons: dict[str, float]  # reason → multiplier just after a pay day
    window_days: int = Field(default=2, ge=1)
    global_days: tuple[int, ...] = (1, 15)  # used while the customer's own pay days are unknown
    global_weight: float = Field(default=0.5, ge=0, le=1)  # how much of the effect a guessed pay day gets


class TimingPrior(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    version: int = Field(ge=1)
    description: str
    base: dict[str, float]
    days_curve: dict[str, Curve]
    hour_bands: tuple[tuple[int, int, float], ...] = ()
    attempt_decay: float = Field(default=1.0, gt=0, le=1)
    funding: dict[str, float] = {}
    paydays: PaydayPrior
    day_buckets: tuple[float, ...] = (0, 1, 2, 4, 7, 10, 14, 21)
    strength: float = Field(default=6.0, gt=0)
    max_probability: float = Field(default=0.95, gt=0, le=1)


@dataclass(frozen=True, slots=True)
class Slot:
    """One possible retry, in the customer's local time."""

    reason: str
    funding: str | None
    days_since_failure: float
    local_hour: int
    day_of_month: int
    attempts_made: int  # failed charges so far, the original one included
    pay_days: tuple[int, ...] = ()  # days of the month the customer's payments succeeded on


@dataclass(frozen=True, slots=True)
class Observation:
    """One past retry from the tenant's attempt ledger, and whether it succeeded."""

    slot: Slot
    succeeded: bool


@dataclass(frozen=True, slots=True)
class TimingModel:
    prior: TimingPrior
    factors: dict[str, float] = field(default_factory=dict)
    observations: int = 0

    @property
    def label(self) -> str:
        return f"{self.prior.id} v{self.prior.version}, {self.observations:,} ledger attempts"

    def knows(self, reason: str) -> bool:
        """Whether the prior has its own success rate for ``reason`` (else it falls back to ``"*"``)."""
        return reason in self.prior.base

    def probability(self, slot: Slot) -> float:
        p = prior_probability(self.prior, slot)
        for key in cells(self.prior, slot):
            p *= self.factors.get(key, 1.0)
        return min(self.prior.max_probability, p)


def prior_probability(prior: TimingPrior, slot: Slot) -> float:
    p = prior.base.get(slot.reason, prior.base.get("*", 0.0))
    p *= _curve(prior.days_curve.get(slot.reason, prior.days_curve["*"]), slot.days_since_failure)
    p *= next((m for start, end, m in prior.hour_bands if start <= slot.local_hour < end), 1.0)
    p *= prior.attempt_decay ** max(0, slot.attempts_made - 1)
    p *= prior.funding.get(slot.funding or "", 1.0)
    return p * payday_factor(prior.paydays, slot)


def payday_factor(paydays: PaydayPrior, slot: Slot) -> float:
    """The customer's own pay days when known; else the common ones, at a fraction of the effect."""
    lift = paydays.reasons.get(slot.reason)
    if lift is None:
        return 1.0
    days, weight = (slot.pay_days, 1.0) if slot.pay_days else (paydays.global_days, paydays.global_weight)
    if any(0 <= slot.day_of_month - day < paydays.window_days for day in days):
        return 1.0 + (lift - 1.0) * weight
    return 1.0 / (1.0 + (lift - 1.0) * weight * 0.5) if slot.pay_days else 1.0


def cells(prior: TimingPrior, slot: Slot) -> tuple[str, ...]:
    """The cell of each family the slot falls in, in fitting order (days, funding, hour)."""
    bucket = bisect.bisect_right(prior.day_buckets, slot.days_since_failure) - 1
    return (f"days:{slot.reason}:{bucket}", f"funding:{slot.reason}:{slot.funding}", f"hour:{slot.local_hour // 3}")


def fit(prior: TimingPrior, ledger: Iterable[Observation]) -> TimingModel:
    """Shrink each cell's observed/expected ratio toward 1 with the prior's strength, one family at a time
    (each against the prior times the families already fitted, so a shared error is not counted three times)."""
    observations = list(ledger)
    factors: dict[str, float] = {}
    for family in range(3):
        model = TimingModel(prior, dict(factors))
        expected: dict[str, float] = defaultdict(float)
        successes: dict[str, float] = defaultdict(float)
        for obs in observations:
            key = cells(prior, obs.slot)[family]
            expected[key] += model.probability(obs.slot)
            successes[key] += obs.succeeded
        k = prior.strength
        factors |= {key: (successes[key] + k) / (expected[key] + k) for key in sorted(expected)}
    return TimingModel(prior, factors, len(observations))


@functools.cache
def default_prior() -> TimingPrior:
    return read_model(PRIOR_FILE, TimingPrior)


def prior_model() -> TimingModel:
    """The model before any data: the prior alone."""
    return TimingModel(default_prior())


def _curve(points: Sequence[tuple[float, float]], days: float) -> float:
    xs = [d for d, _ in points]
    index = bisect.bisect_right(xs, days)
    if index == 0:
        return points[0][1]
    if index == len(points):
        return points[-1][1]
    (d0, m0), (d1, m1) = points[index - 1], points[index]
    return m0 + (m1 - m0) * (days - d0) / (d1 - d0)
