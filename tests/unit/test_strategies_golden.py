"""Golden schedules: each shipped template, a fixed first failure, country and code → exact datetimes.

The first failure is Tuesday 3 March 2026, 14:30 UTC. Each retry is assumed to fail the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from strategies.loader import default_book
from strategies.projection import project
from strategies.segments import CustomerProfile

T0 = datetime(2026, 3, 3, 14, 30, tzinfo=UTC)

Step = tuple[str, datetime | None, str | None]


def utc(day: int, hour: int, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, micro, tzinfo=UTC)


def schedule(
    strategy_id: str,
    country: str,
    category: str,
    reason: str,
    brand: str | None,
    visa_category: int | None = None,
    mc_advice_code: str | None = None,
    past_failures: int = 1,
) -> list[Step]:
    plans = project(
        default_book().get(strategy_id, 1),
        category=category,
        reason=reason,
        first_failed_at=T0,
        profile=CustomerProfile(customer_id="cus_golden", country=country, past_failures=past_failures),
        segment="golden",
        brand=brand,
        visa_category=visa_category,
        mc_advice_code=mc_advice_code,
        seed=7,
    )
    return [(plan.action, plan.at, plan.email_template) for plan in plans]


def test_standard_in_germany_retries_a_do_not_honor_on_the_day_1_3_7_12_ladder_in_berlin_hours() -> None:
    assert schedule("standard", "DE", "SOFT_DECLINE", "do_not_honor", "visa", 4) == [
        ("retry", utc(4, 14, 30), "payment_failed"),  # Wed 15:30 Berlin
        ("retry", utc(6, 14, 30), None),  # Fri
        ("retry", utc(10, 14, 30), "payment_failed"),  # Tue
        ("retry", utc(16, 8), None),  # day 12 is Sunday 15 → Monday 09:00 Berlin
        ("final", None, "final_notice"),
    ]


def test_standard_in_the_us_waits_for_payday_on_insufficient_funds() -> None:
    assert schedule("standard", "US", "SOFT_DECLINE", "insufficient_funds", "visa", 2) == [
        ("retry", utc(16, 13), "payment_failed"),  # the 15th is a Sunday → Monday 09:00 New York (EDT)
        ("retry", utc(17, 13), None),  # no payday left in the window → the ladder, 09:00 next day
        ("final", None, "final_notice"),  # the next step (day 7 + half gap) is past the 14-day window
    ]


def test_aggressive_in_britain_honours_mastercard_advice_25_between_ladder_steps() -> None:
    assert schedule("aggressive", "GB", "SOFT_DECLINE", "generic_decline", "mastercard", None, "25") == [
        ("retry", utc(4, 14, 30), "payment_failed"),  # +4 h would be 18:30; advice 25 wants 24 h
        ("retry", utc(5, 14, 30), None),  # +24 h would be Wed; 24 h after the last attempt
        ("retry", utc(6, 14, 30), "payment_failed"),
        ("retry", utc(9, 8), None),  # +120 h is Sunday → Monday 08:00 London
        ("retry", utc(10, 14, 30), None),
        ("retry", utc(13, 14, 30), "payment_failed"),
        ("retry", utc(17, 14, 30), None),
        ("final", None, "final_notice"),
    ]


def test_aggressive_in_the_us_tries_payday_then_daily_evenings_within_the_window() -> None:
    assert schedule("aggressive", "US", "SOFT_DECLINE", "insufficient_funds", "visa", 2) == [
        ("retry", utc(16, 12), "payment_failed"),  # Monday 08:00 New York, after the Sunday 15th
        ("retry", utc(16, 22), None),  # ladder step 2, half its gap after the payday try
        ("retry", utc(17, 22), "payment_failed"),
        ("retry", utc(18, 22), None),
        ("retry", utc(19, 22), None),
        ("retry", utc(23, 12), "payment_failed"),  # Saturday is the US weekend → Monday 08:00
        ("final", None, "final_notice"),
    ]


def test_conservative_in_germany_only_retries_tuesday_to_thursday_mornings() -> None:
    assert schedule("conservative", "DE", "SOFT_DECLINE", "do_not_honor", "visa", 4) == [
        ("retry", utc(10, 9), "payment_failed"),  # day 3 is Friday → Tuesday 10:00 Berlin
        ("retry", utc(12, 9), None),  # half the 4-day gap after Tuesday → Thursday 10:00
        ("final", None, "final_notice"),
    ]


def test_new_customer_in_japan_alerts_on_the_first_failure_and_retries_at_tokyo_nine_am() -> None:
    plans = project(
        default_book().get("new_customer", 1),
        category="SOFT_DECLINE",
        reason="do_not_honor",
        first_failed_at=T0,
        profile=CustomerProfile(customer_id="cus_new", country="JP", tenure_days=3),
        segment="new_customer",
        brand="visa",
        visa_category=4,
    )
    assert [(p.action, p.at, p.email_template, p.alert) for p in plans] == [
        ("retry", utc(5, 0), "payment_failed", "first_failure"),  # Wed 23:30 Tokyo → Thu 09:00
        ("retry", utc(9, 0), "action_required", None),  # day 3 is Friday 23:30 → Monday 09:00
        ("retry", utc(11, 0), None, None),
        ("final", None, "final_notice", None),
    ]
    assert plans[-1].final_action == "mark_uncollectible"


def test_standard_backs_off_exponentially_with_seeded_jitter_on_network_errors() -> None:
    assert schedule("standard", "DE", "NETWORK_ERROR", "processing_error", None) == [
        ("retry", utc(3, 14, 31), None),  # 48–60 s of backoff, floored at one minute
        ("retry", utc(3, 14, 33, 43, 331735), None),
        ("retry", utc(3, 14, 41, 41, 620255), None),
        ("retry", utc(3, 15, 6, 15, 49280), None),
        ("retry", utc(3, 16, 19, 33, 766580), None),
        ("retry", utc(3, 18, 13, 20, 794352), None),
        ("retry", utc(3, 20, 10, 46, 961258), None),
        ("final", None, "final_notice"),
    ]


@pytest.mark.parametrize("strategy_id", ["aggressive", "standard", "conservative", "new_customer"])
def test_every_template_sends_the_customer_to_authenticate_on_sca(strategy_id: str) -> None:
    steps = schedule(strategy_id, "FR", "AUTHENTICATION_REQUIRED", "authentication_required", "visa", 3)
    assert len(steps) == 1
    action, deadline, email = steps[0]
    assert (action, email) == ("await_customer", "action_required")
    assert deadline is not None and deadline > T0
