"""Schedule shapes a strategy can use, as validated data: fixed ladder, exponential backoff, payday, learned."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, field_validator, model_validator

from strategies.calendar import WEEKDAYS, Weekday


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LadderSchedule(_Frozen):
    """Retry ``n`` happens ``steps[n-1]`` hours or days after the first failure."""

    type: Literal["ladder"]
    unit: Literal["hours", "days"]
    steps: tuple[PositiveFloat, ...] = Field(min_length=1)

    @field_validator("steps")
    @classmethod
    def _strictly_increasing(cls, steps: tuple[float, ...]) -> tuple[float, ...]:
        for index, (before, after) in enumerate(zip(steps, steps[1:], strict=False), start=2):
            if after <= before:
                raise ValueError(
                    f"ladder must strictly increase: step {index} ({after:g}) is not after {before:g}"
                )
        return steps

    def offset(self, retry_no: int) -> timedelta:
        """Offset from the first failure of retry number ``retry_no`` (1-based)."""
        step = self.steps[min(retry_no, len(self.steps)) - 1]
        return timedelta(hours=step) if self.unit == "hours" else timedelta(days=step)


class ExponentialSchedule(_Frozen):
    """Retry ``n`` waits ``min(cap, base * factor**(n-1))``, shortened by up to ``jitter`` (a fraction)."""

    type: Literal["exponential"]
    base_seconds: PositiveFloat
    factor: float = Field(default=2.0, ge=1)
    cap_seconds: PositiveFloat
    jitter: float = Field(default=0.2, ge=0, lt=1)

    @model_validator(mode="after")
    def _cap_above_base(self) -> ExponentialSchedule:
        if self.cap_seconds < self.base_seconds:
            raise ValueError(
                f"cap_seconds ({self.cap_seconds:g}) is below base_seconds ({self.base_seconds:g})"
            )
        return self

    def delay(self, retry_no: int, draw: float) -> timedelta:
        """The wait before retry ``retry_no``; ``draw`` in [0, 1) comes from the caller's seeded RNG."""
        exponent = min(retry_no - 1, 64)  # past 2**64 every sane cap has long been reached
        capped = min(self.cap_seconds, self.base_seconds * self.factor**exponent)
        return timedelta(seconds=capped * (1 - self.jitter * draw))


class PaydaySchedule(_Frozen):
    """Retry on the next pay date (given days of the month, and/or the month's last business day)."""

    type: Literal["payday"]
    days_of_month: tuple[Annotated[int, Field(ge=1, le=31)], ...] = (1, 15)
    last_business_day: bool = True
    min_gap_hours: float = Field(default=24, ge=0)
    local_time: time = time(9, 0)

    @model_validator(mode="after")
    def _some_payday(self) -> PaydaySchedule:
        if not self.days_of_month and not self.last_business_day:
            raise ValueError("a payday schedule needs days_of_month or last_business_day")
        return self


class LearnedSchedule(_Frozen):
    """Retry at the slot with the most expected revenue per attempt under the learned timing model
    (`strategies/learned.py`), searched `horizon_days` ahead; at most one retry per `min_gap_hours`; no retry
    when the best slot's success chance is below `min_success`, nor when its expected revenue
    (amount × success chance) is below `attempt_cost` (minor units per currency, ``"*"`` for any other; empty:
    no cost). With `value_caps_attempts`, the classification's `max_attempts_cap` yields to that expected-value
    rule for the reasons the timing model has a prior for (a cap is a static stand-in for the chance that one
    more retry works; unknown codes keep theirs). The strategy's `max_attempts`, window and network rules still
    apply."""

    type: Literal["learned"]
    horizon_days: float = Field(default=10, gt=0, le=30)
    min_gap_hours: float = Field(default=20, ge=1)  # ≥ 2.4 h keeps Mastercard's 10 per 24 h by construction
    min_success: float = Field(default=0.03, ge=0, lt=1)
    discount_per_day: float = Field(default=0.02, ge=0, lt=1)
    attempt_cost: dict[str, Annotated[int, Field(ge=0)]] = {}
    value_caps_attempts: bool = False

    @field_validator("attempt_cost")
    @classmethod
    def _currency_keys(cls, costs: dict[str, int]) -> dict[str, int]:
        for code in costs:
            if code != "*" and not (len(code) == 3 and code.isalpha() and code.islower()):
                raise ValueError(f"attempt_cost: {code!r} is neither a lower-case ISO 4217 code nor '*'")
        return costs

    def cost(self, currency: str) -> int:
        """What one attempt costs in ``currency``'s minor units (0 when no cost is set)."""
        return self.attempt_cost.get(currency.lower(), self.attempt_cost.get("*", 0))


Schedule = Annotated[
    LadderSchedule | ExponentialSchedule | PaydaySchedule | LearnedSchedule, Field(discriminator="type")
]


class BusinessHours(_Frozen):
    """Customer-local hours and weekdays when a ladder or payday retry may run."""

    start: time = time(9, 0)
    end: time = time(17, 0)
    weekdays: tuple[Weekday, ...] = Field(default=WEEKDAYS[:5], min_length=1)

    @model_validator(mode="after")
    def _end_after_start(self) -> BusinessHours:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end:%H:%M}) must be after start ({self.start:%H:%M})")
        return self
