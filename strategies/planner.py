"""The next step of a failed invoice: pure and deterministic given its inputs (invariants I5 and I6).

Precedence: the category's policy (halt, escalate, await the customer); then reasons only the customer
can fix; then network stops; then a retry slot that satisfies the
schedule, business hours, the provider's minimum delay and every network budget, inside the window.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from strategies.calendar import Countries, CountryCalendar, default_countries
from strategies.learned import TimingModel, prior_model
from strategies.model import AwaitPolicy, CustomerAction, EscalatePolicy, HaltPolicy, RetryPolicy, Strategy
from strategies.network import BudgetVerdict, NetworkLimits, check_network_budget, needs_new_details, permanent_stop
from strategies.retry_timing import Search, best_slot
from strategies.schedules import ExponentialSchedule, LadderSchedule, LearnedSchedule, PaydaySchedule, Schedule
from strategies.segments import CustomerProfile
from strategies.timing import align_to_hours, next_payday

MIN_GAP = timedelta(minutes=1)  # a retry is always strictly after the failure it answers
_BUDGET_ROUNDS = 12  # each round moves the slot past one broken network rule

_SILENT = frozenset({"RATE_LIMITED", "NETWORK_ERROR"})

Action = Literal["retry", "await_customer", "escalate", "halt", "final"]


class RetryPlan(BaseModel):
    """One decision. ``at``: when to retry, the deadline to await/recheck, or None (halt, final)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Action
    at: datetime | None
    attempt_no: int  # the number the next charge attempt would carry
    max_attempts: int | None
    email_template: str | None  # the email to send now
    final_action: str | None
    alert: str | None  # "engineering", "fraud" or "first_failure": who to tell now
    explanation: str
    strategy_id: str
    strategy_version: int
    segment: str


@dataclass(frozen=True)
class _Case:
    strategy: Strategy
    category: str
    reason: str
    attempts_made: int
    first_failed_at: datetime
    now: datetime
    profile: CustomerProfile
    card_history: Sequence[datetime]
    brand: str | None
    visa_category: int | None
    mc_advice_code: str | None
    min_delay_seconds: int
    seed: int
    limits: NetworkLimits
    segment: str
    calendar: CountryCalendar
    zone: ZoneInfo
    max_attempts_cap: int | None = None
    timing: TimingModel | None = None
    funding: str | None = None
    pay_days: tuple[int, ...] = ()


def plan_next(
    strategy: Strategy,
    *,
    category: str,
    reason: str,
    attempts_made: int,
    first_failed_at: datetime,
    now: datetime,
    profile: CustomerProfile,
    card_history: Sequence[datetime],
    brand: str | None,
    visa_category: int | None,
    mc_advice_code: str | None,
    min_delay_seconds: int,
    seed: int,
    limits: NetworkLimits,
    segment: str,
    countries: Countries | None = None,
    max_attempts_cap: int | None = None,
    timing: TimingModel | None = None,
    funding: str | None = None,
    pay_days: tuple[int, ...] = (),
) -> RetryPlan:
    """Decide what follows failed attempt number ``attempts_made`` (>= 1; the original charge is 1).

    Datetimes must be timezone-aware. ``card_history`` holds every attempt already made on the card,
    the one that just failed included; jitter comes only from ``random.Random(seed)``.
    ``max_attempts_cap`` (the classification's, e.g. an unknown code's) lowers a retry policy's
    ``max_attempts``; like it, it counts every charge of the invoice, the original one included.
    """
    if attempts_made < 1:
        raise ValueError("attempts_made counts the failed charges and starts at 1")
    if max_attempts_cap is not None and max_attempts_cap < 1:
        raise ValueError("max_attempts_cap counts every charge and is at least 1")
    calendar = (countries or default_countries()).of(profile.country)
    zone = ZoneInfo(profile.timezone) if profile.timezone else calendar.zone()
    case = _Case(
        strategy,
        category,
        reason,
        attempts_made,
        first_failed_at,
        now,
        profile,
        card_history,
        brand,
        visa_category,
        mc_advice_code,
        min_delay_seconds,
        seed,
        limits,
        segment,
        calendar,
        zone,
        max_attempts_cap,
        timing,
        funding,
        pay_days,
    )
    return _decide(case)


def _decide(case: _Case) -> RetryPlan:
    policy = case.strategy.policy(case.category)
    customer = case.strategy.customer_action
    if isinstance(policy, HaltPolicy):
        return _plan(case, "halt", None, "halt and report", [], alert="fraud")
    if isinstance(policy, EscalatePolicy):
        at = case.now + timedelta(hours=policy.deadline_hours)
        return _plan(
            case,
            "escalate",
            at,
            f"escalate to engineering, recheck {_local(case, at)}",
            [],
            alert="engineering",
        )
    if isinstance(policy, AwaitPolicy):
        return _await(case, policy, "the customer must act")
    if case.reason in customer.reasons:
        return _await(case, customer, f"only the customer can fix {case.reason}")
    stop = permanent_stop(case.visa_category, case.mc_advice_code, case.limits)
    stop = stop or needs_new_details(case.visa_category, case.mc_advice_code)
    if stop is not None:
        return _await(case, customer, stop)
    return _retry(case, policy)


def _await(case: _Case, policy: AwaitPolicy | CustomerAction, note: str) -> RetryPlan:
    window_end = case.first_failed_at + timedelta(days=policy.max_window_days)
    deadline = min(case.now + timedelta(hours=policy.deadline_hours), window_end)
    if deadline <= case.now:
        return _final(case, [note, f"the {policy.max_window_days:g}-day window has passed"], None)
    head = f"await customer until {_local(case, deadline)}"
    return _plan(case, "await_customer", deadline, head, [note], email=case.strategy.await_email)


def _limit(case: _Case, policy: RetryPolicy) -> tuple[int, list[str]]:
    """The policy's ``max_attempts``, lowered by the classification's cap (with a note saying so) — unless a
    learned schedule's expected-value rule takes the cap's place for a reason the timing model knows."""
    cap = case.max_attempts_cap
    if cap is None or cap >= policy.max_attempts:
        return policy.max_attempts, []
    schedule = policy.schedule_for(case.reason)
    learned = isinstance(schedule, LearnedSchedule) and schedule.value_caps_attempts
    if learned and (case.timing or prior_model()).knows(case.reason):
        return policy.max_attempts, [f"the classification's cap of {cap} yields to the expected-value rule"]
    return cap, [f"capped at {cap} by the classification (the strategy allows {policy.max_attempts})"]


def _retry(case: _Case, policy: RetryPolicy) -> RetryPlan:
    limit, capped = _limit(case, policy)
    if case.attempts_made >= limit:
        return _final(case, [f"attempts used up ({case.attempts_made} of {limit})", *capped], limit)
    window_end = case.first_failed_at + timedelta(days=policy.max_window_days)
    preferred = policy.schedule_for(case.reason)
    at, notes = _slot(case, preferred, window_end)
    if (at is None or at > window_end) and preferred is not policy.schedule:
        # A reason's own schedule (e.g. payday) that finds no slot in time yields to the category's one.
        at, fallback = _slot(case, policy.schedule, window_end)
        notes = [f"{notes[0]} is past the window", *fallback]
    if at is None or at > window_end:
        return _final(case, [*notes, f"no slot before the window ends {_local(case, window_end)}", *capped], limit)
    head = f"attempt {case.attempts_made + 1} of {limit} on {_local(case, at)}"
    # Our own transient errors (rate limits, outages) are not the customer's business: no email.
    email = None if case.category in _SILENT else case.strategy.email_after(case.attempts_made)
    return _plan(case, "retry", at, head, [*notes, *capped], email=email, max_attempts=limit)


def _final(case: _Case, notes: list[str], max_attempts: int | None) -> RetryPlan:
    strategy = case.strategy
    head = f"final after {case.attempts_made} failed attempt{'s' if case.attempts_made > 1 else ''}"
    return _plan(
        case,
        "final",
        None,
        f"{head}: {strategy.final_action}",
        notes,
        email=strategy.final_email,
        final_action=strategy.final_action,
        max_attempts=max_attempts,
    )


def _slot(case: _Case, schedule: Schedule, window_end: datetime) -> tuple[datetime | None, list[str]]:
    """The schedule's time, then pushed past every network rule it would break (None: never settles)."""
    if isinstance(schedule, LearnedSchedule):
        return _learned(case, schedule, window_end)
    at, note = _candidate(case, schedule)
    notes = [note]
    for _ in range(_BUDGET_ROUNDS):
        verdict = check_network_budget(
            case.card_history, case.brand, case.visa_category, case.mc_advice_code, at, case.limits
        )
        notes.append(verdict.reason)
        if verdict.allowed:
            return at, notes
        if verdict.earliest_at is None:  # pragma: no cover - permanent stops are handled before
            return None, notes
        at = _place(case, schedule, verdict.earliest_at)
    return None, notes


def _learned(case: _Case, schedule: LearnedSchedule, window_end: datetime) -> tuple[datetime | None, list[str]]:
    """The slot with the most expected revenue per attempt among those every network rule allows."""
    gap = max(timedelta(seconds=case.min_delay_seconds), MIN_GAP, timedelta(hours=schedule.min_gap_hours))
    search = Search(case.reason, case.funding, case.profile.invoice_amount, case.attempts_made,
                    case.first_failed_at, case.now, case.now + gap, window_end, case.pay_days,
                    case.strategy.business_hours, case.calendar, case.zone, case.profile.currency)
    choice = best_slot(case.timing or prior_model(), schedule, search, lambda at: _budget(case, at).allowed)
    if choice is None:
        cost = schedule.cost(case.profile.currency) if case.profile.invoice_amount > 0 else 0
        worth = f"≥ {schedule.min_success:.0%} expected success" + (
            f", expected revenue ≥ {cost} {case.profile.currency}" if cost else "")
        return None, [f"learned timing: no slot worth an attempt ({worth})"]
    return choice.at, [choice.note, _budget(case, choice.at).reason]


def _budget(case: _Case, at: datetime) -> BudgetVerdict:
    return check_network_budget(case.card_history, case.brand, case.visa_category, case.mc_advice_code, at,
                                case.limits)


def _candidate(case: _Case, schedule: LadderSchedule | ExponentialSchedule | PaydaySchedule) -> tuple[datetime, str]:
    retry_no = case.attempts_made
    lower = case.now + max(timedelta(seconds=case.min_delay_seconds), MIN_GAP)
    if isinstance(schedule, LadderSchedule):
        at, note = _ladder(case, schedule, retry_no)
    elif isinstance(schedule, ExponentialSchedule):
        delay = schedule.delay(retry_no, random.Random(case.seed).random())
        at, note = case.now + delay, f"backoff {_duration(delay)}"
    else:
        at, note = _payday(case, schedule, lower), "next payday"
    if at < lower:
        at, note = lower, f"{note}, not before {_duration(lower - case.now)} from now"
    return _place(case, schedule, at), note


def _ladder(case: _Case, schedule: LadderSchedule, retry_no: int) -> tuple[datetime, str]:
    """The ladder's offset from the first failure, but at least half the ladder's gap after the last try.

    Business hours or a payday can push a retry later; without the half-gap floor the next step could
    follow within minutes and waste a network attempt.
    """
    offset = schedule.offset(retry_no)
    gap = offset - (schedule.offset(retry_no - 1) if retry_no > 1 else timedelta(0))
    step = schedule.steps[min(retry_no, len(schedule.steps)) - 1]
    at = max(case.first_failed_at + offset, case.now + gap / 2)
    return at, f"ladder step {retry_no} (+{step:g} {schedule.unit})"


def _payday(case: _Case, schedule: PaydaySchedule, lower: datetime) -> datetime:
    earliest = max(lower, case.now + timedelta(hours=schedule.min_gap_hours))
    return next_payday(earliest, schedule, case.calendar, case.zone)


def _place(case: _Case, schedule: Schedule, at: datetime) -> datetime:
    """Ladder and payday retries land in the customer's business hours; backoff retries do not wait."""
    if isinstance(schedule, ExponentialSchedule | LearnedSchedule):
        return at  # backoff does not wait; a learned slot was chosen inside business hours already
    return align_to_hours(at, case.strategy.business_hours, case.calendar, case.zone)


def _plan(
    case: _Case,
    action: Action,
    at: datetime | None,
    head: str,
    notes: list[str],
    *,
    email: str | None = None,
    final_action: str | None = None,
    max_attempts: int | None = None,
    alert: str | None = None,
) -> RetryPlan:
    strategy = case.strategy
    first = strategy.alert_on_first_failure and case.attempts_made == 1 and case.profile.is_first_failure
    parts = [
        f"{case.category} {case.reason}",
        f"segment {case.segment} → strategy {strategy.id} v{strategy.version}",
    ]
    return RetryPlan(
        action=action,
        at=at,
        attempt_no=case.attempts_made + 1,
        max_attempts=max_attempts,
        email_template=email,
        final_action=final_action,
        alert=alert or ("first_failure" if first else None),
        explanation=f"{head}: " + "; ".join([*parts, *notes]),
        strategy_id=strategy.id,
        strategy_version=strategy.version,
        segment=case.segment,
    )


def _local(case: _Case, at: datetime) -> str:
    return f"{at.astimezone(case.zone):%a %d %b %H:%M} {case.zone.key}"


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
