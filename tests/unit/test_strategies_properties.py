"""Properties of every planned schedule, whatever the template, country, code, clock or card history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.calendar import default_countries
from strategies.loader import default_book
from strategies.model import CATEGORIES, RetryPolicy
from strategies.network import NetworkLimits, check_network_budget
from strategies.planner import RetryPlan
from strategies.projection import project
from strategies.schedules import ExponentialSchedule
from strategies.segments import CustomerProfile

BOOK = default_book()
LIMITS = NetworkLimits()


@dataclass(frozen=True)
class Failure:
    strategy_id: str
    country: str | None
    category: str
    reason: str
    brand: str | None
    visa_category: int | None
    mc_advice_code: str | None
    first_failed_at: datetime
    min_delay_seconds: int
    seed: int
    earlier: tuple[datetime, ...]


@st.composite
def failures(draw: st.DrawFn) -> Failure:
    first = draw(st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)))
    back = draw(st.lists(st.floats(0.01, 45), max_size=20))
    return Failure(
        strategy_id=draw(st.sampled_from(BOOK.ids())),
        country=draw(st.sampled_from(["US", "DE", "GB", "JP", "SA", "AU", "BR", "IN", None])),
        category=draw(st.sampled_from([*CATEGORIES, "UNKNOWN"])),
        reason=draw(st.sampled_from(["insufficient_funds", "do_not_honor", "generic_decline", "expired_card",
                                     "stolen_card", "processing_error", "rate_limit"])),
        brand=draw(st.sampled_from(["visa", "mastercard", "amex", None])),
        visa_category=draw(st.none() | st.integers(1, 4)),
        mc_advice_code=draw(st.none() | st.sampled_from(["01", "02", "03", "21", "24", "25", "27", "30"])),
        first_failed_at=first,
        min_delay_seconds=draw(st.integers(0, 7200)),
        seed=draw(st.integers(0, 2**32)),
        earlier=tuple(sorted(first - timedelta(days=d) for d in back)),
    )  # fmt: skip


def schedule_of(failure: Failure) -> list[RetryPlan]:
    return project(
        BOOK.get(failure.strategy_id),
        category=failure.category,
        reason=failure.reason,
        first_failed_at=failure.first_failed_at,
        profile=CustomerProfile(customer_id="cus_p", country=failure.country),
        segment="prop",
        brand=failure.brand,
        visa_category=failure.visa_category,
        mc_advice_code=failure.mc_advice_code,
        min_delay_seconds=failure.min_delay_seconds,
        seed=failure.seed,
        limits=LIMITS,
        earlier_card_attempts=failure.earlier,
    )


def retries(plans: list[RetryPlan]) -> list[datetime]:
    return [plan.at for plan in plans if plan.action == "retry" and plan.at is not None]


@settings(max_examples=300, deadline=None)
@given(failures())
def test_attempt_times_strictly_increase_after_the_first_failure(failure: Failure) -> None:
    times = [failure.first_failed_at, *retries(schedule_of(failure))]
    assert all(before < after for before, after in zip(times, times[1:], strict=False))


@settings(max_examples=300, deadline=None)
@given(failures())
def test_retries_stay_inside_the_window_and_the_attempt_limit(failure: Failure) -> None:
    plans = schedule_of(failure)
    policy = BOOK.get(failure.strategy_id).policy(failure.category)
    times = retries(plans)
    if not times:
        return
    assert isinstance(policy, RetryPolicy)
    assert len(times) <= policy.max_attempts - 1
    assert max(times) <= failure.first_failed_at + timedelta(days=policy.max_window_days)
    assert plans[-1].action == "final"


@settings(max_examples=300, deadline=None)
@given(failures())
def test_no_retry_ever_breaks_a_network_budget(failure: Failure) -> None:
    history = [*failure.earlier, failure.first_failed_at]
    for at in retries(schedule_of(failure)):
        verdict = check_network_budget(
            history, failure.brand, failure.visa_category, failure.mc_advice_code, at, LIMITS
        )
        assert verdict.allowed, verdict.reason
        history.append(at)


@settings(max_examples=300, deadline=None)
@given(failures())
def test_nothing_is_retried_after_a_hard_decline_fraud_or_a_network_stop(failure: Failure) -> None:
    never = failure.category in {
        "HARD_DECLINE",
        "FRAUD_FLAGGED",
        "CONFIG_ERROR",
        "AUTHENTICATION_REQUIRED",
        "UNKNOWN",
    }
    never = never or failure.visa_category == 1 or failure.mc_advice_code in {"03", "21"}
    plans = schedule_of(failure)
    if never:
        assert not retries(plans)
        assert len(plans) == 1


@settings(max_examples=300, deadline=None)
@given(failures())
def test_calendar_retries_land_in_customer_local_business_hours(failure: Failure) -> None:
    strategy = BOOK.get(failure.strategy_id)
    policy = strategy.policy(failure.category)
    hours = strategy.business_hours
    if not isinstance(policy, RetryPolicy) or hours is None:
        return
    calendar = default_countries().of(failure.country)
    for plan, at in [(p, p.at) for p in schedule_of(failure) if p.action == "retry" and p.at]:
        if (
            isinstance(policy.schedule_for(failure.reason), ExponentialSchedule)
            and "backoff" in plan.explanation
        ):
            continue
        local = at.astimezone(calendar.zone())
        assert hours.start <= local.time() < hours.end
        assert calendar.is_business_day(local.date())
        assert local.strftime("%a").lower() in hours.weekdays
