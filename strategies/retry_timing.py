"""Choosing a retry's time with the learned model: the slot with the most expected revenue per attempt.

Candidates are whole local hours (the business hours' opening time included) from the earliest allowed moment
to the end of the horizon or the window, whichever comes first; each is scored
``amount × p(success) × (1 − discount)^days_waited`` — money sooner is worth a little more, and an equal chance
later only wastes time. The best candidate the network budget allows wins (ties: the earliest). Below
`min_success`, or with an expected revenue (amount × p) below the schedule's `attempt_cost` in the invoice's
currency (when the amount is known), no retry is worth its network budget: the answer is None.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from strategies.calendar import CountryCalendar, weekday_name
from strategies.learned import Slot, TimingModel
from strategies.schedules import BusinessHours, LearnedSchedule


@dataclass(frozen=True, slots=True)
class Choice:
    at: datetime
    probability: float
    note: str


@dataclass(frozen=True, slots=True)
class Search:
    """What one search needs to know about the case (all datetimes timezone-aware)."""

    reason: str
    funding: str | None
    amount: int
    attempts_made: int
    first_failed_at: datetime
    now: datetime
    earliest: datetime
    window_end: datetime
    pay_days: tuple[int, ...]
    hours: BusinessHours | None
    calendar: CountryCalendar
    zone: ZoneInfo
    currency: str = "*"


def best_slot(
    model: TimingModel, schedule: LearnedSchedule, search: Search, allowed: Callable[[datetime], bool]
) -> Choice | None:
    """The best allowed slot, or None when none is worth an attempt (or none is allowed)."""
    scored = sorted(
        ((_value(model, schedule, search, at), at) for at in candidates(schedule, search)),
        key=lambda pair: (-pair[0][0], pair[1]),
    )
    floor = schedule.cost(search.currency) if search.amount > 0 else 0  # an unknown amount is not a small one
    for (_, p), at in scored:
        if p >= schedule.min_success and search.amount * p >= floor and allowed(at):
            return Choice(at, p, _note(search, schedule, at, p, model))
    return None


def candidates(schedule: LearnedSchedule, search: Search) -> Iterator[datetime]:
    """Every whole local hour (and each opening time) in the search range, inside business hours if set."""
    end = min(search.window_end, search.now + timedelta(days=schedule.horizon_days))
    if search.earliest > end:
        return
    yield from _open(search, search.earliest)
    local = search.earliest.astimezone(search.zone).replace(minute=0, second=0, microsecond=0)
    at = local + timedelta(hours=1)
    while at.astimezone(UTC) <= end:
        opens = search.hours.start if search.hours is not None and search.hours.start.minute else None
        if opens is not None and at.time() < opens <= (at + timedelta(hours=1)).time():
            yield from _open(search, at.replace(hour=opens.hour, minute=opens.minute))
        yield from _open(search, at)
        at += timedelta(hours=1)


def _open(search: Search, local: datetime) -> Iterator[datetime]:
    at = local.astimezone(UTC)
    if at < search.earliest or at > search.window_end:
        return
    hours, day = search.hours, local.astimezone(search.zone)
    if hours is None or (
        weekday_name(day.date()) in hours.weekdays
        and search.calendar.is_business_day(day.date())
        and hours.start <= day.time() < hours.end
    ):
        yield at


def slot_of(search: Search, at: datetime) -> Slot:
    local = at.astimezone(search.zone)
    days = (at - search.first_failed_at).total_seconds() / 86400
    return Slot(search.reason, search.funding, days, local.hour, local.day, search.attempts_made, search.pay_days)


def _value(model: TimingModel, schedule: LearnedSchedule, search: Search, at: datetime) -> tuple[float, float]:
    p = model.probability(slot_of(search, at))
    waited = (at - search.now).total_seconds() / 86400
    return round(max(search.amount, 1) * p * (1 - schedule.discount_per_day) ** waited, 9), p


def _note(search: Search, schedule: LearnedSchedule, at: datetime, p: float, model: TimingModel) -> str:
    local = at.astimezone(search.zone)
    day = int((at - search.first_failed_at).total_seconds() // 86400) + 1
    funding = f" on {search.funding}" if search.funding else ""
    paydays = f", pay days {'/'.join(map(str, search.pay_days))}" if search.pay_days else ""
    return (
        f"day {day} at {local:%H:%M} local: {p:.0%} expected success for {search.reason}{funding}, "
        f"best of the next {schedule.horizon_days:g} days ({model.label}{paydays})"
    )
