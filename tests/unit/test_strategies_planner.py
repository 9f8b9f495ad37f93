"""plan_next: what each category and network signal leads to, and why the explanation says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from strategies.errors import StrategyError
from strategies.loader import default_book
from strategies.network import NetworkLimits
from strategies.planner import RetryPlan, plan_next
from strategies.schedules import BusinessHours
from strategies.segments import CustomerProfile

NOW = datetime(2026, 3, 3, 14, 30, tzinfo=UTC)  # Tuesday
STANDARD = default_book().get("standard", 1)


def plan(**overrides: Any) -> RetryPlan:
    args: dict[str, Any] = {
        "category": "SOFT_DECLINE",
        "reason": "do_not_honor",
        "attempts_made": 1,
        "first_failed_at": NOW,
        "now": NOW,
        "profile": CustomerProfile(customer_id="cus_1", country="DE", past_failures=1),
        "card_history": (NOW,),
        "brand": "visa",
        "visa_category": 4,
        "mc_advice_code": None,
        "min_delay_seconds": 0,
        "seed": 1,
        "limits": NetworkLimits(),
        "segment": "high_value",
    }
    strategy = overrides.pop("strategy", STANDARD)
    return plan_next(strategy, **{**args, **overrides})


@pytest.mark.parametrize("reason", ["stolen_card", "lost_card", "pickup_card", "do_not_honor"])
def test_a_hard_decline_is_never_retried_but_asks_for_a_new_card(reason: str) -> None:
    result = plan(category="HARD_DECLINE", reason=reason)
    assert result.action == "await_customer"
    assert result.at == NOW + timedelta(hours=168)
    assert result.email_template == "action_required"
    assert result.explanation.startswith("await customer until Tue 10 Mar 15:30 Europe/Berlin: HARD_DECLINE")


def test_authentication_required_awaits_the_customer_with_a_deadline() -> None:
    result = plan(category="AUTHENTICATION_REQUIRED", reason="authentication_required")
    assert (result.action, result.at) == ("await_customer", NOW + timedelta(hours=72))


@pytest.mark.parametrize("reason", ["expired_card", "incorrect_cvc", "new_account_information_available"])
def test_reasons_only_the_customer_can_fix_await_them_whatever_the_category(reason: str) -> None:
    result = plan(category="SOFT_DECLINE", reason=reason)
    assert result.action == "await_customer"
    assert f"only the customer can fix {reason}" in result.explanation


def test_a_configuration_error_escalates_to_engineering_with_a_recheck_time() -> None:
    result = plan(category="CONFIG_ERROR", reason="api_key_expired")
    assert (result.action, result.at, result.alert) == ("escalate", NOW + timedelta(hours=24), "engineering")
    assert result.email_template is None


def test_fraud_halts_without_emailing_the_customer() -> None:
    result = plan(category="FRAUD_FLAGGED", reason="fraudulent")
    assert (result.action, result.at, result.alert, result.email_template) == ("halt", None, "fraud", None)


def test_an_unknown_category_is_treated_as_a_hard_decline() -> None:
    assert plan(category="MYSTERY", reason="x").action == "await_customer"


@pytest.mark.parametrize(
    ("visa_category", "advice", "brand", "words"),
    [
        (1, None, "visa", "Visa category 1"),
        (None, "03", "mastercard", "Mastercard advice 03"),
        (None, "21", "mastercard", "Mastercard advice 21"),
        (3, None, "visa", "Visa category 3"),
        (None, "01", "mastercard", "Mastercard advice 01"),
    ],
)
def test_network_stops_turn_a_soft_decline_into_a_request_for_new_details(
    visa_category: int | None, advice: str | None, brand: str, words: str
) -> None:
    result = plan(visa_category=visa_category, mc_advice_code=advice, brand=brand)
    assert result.action == "await_customer"
    assert words in result.explanation


def test_the_explanation_says_attempt_time_zone_category_segment_strategy_schedule_and_budget() -> None:
    history = tuple(NOW - timedelta(days=d) for d in (0, 5, 6))
    result = plan(reason="insufficient_funds", attempts_made=2, card_history=history, first_failed_at=NOW)
    assert result.explanation == (
        "attempt 3 of 5 on Mon 16 Mar 09:00 Europe/Berlin: SOFT_DECLINE insufficient_funds; "
        "segment high_value → strategy standard v1; next payday; Visa budget 12/15 left"
    )
    assert (result.attempt_no, result.max_attempts, result.strategy_id, result.strategy_version) == (
        3,
        5,
        "standard",
        1,
    )
    assert result.segment == "high_value"


def test_attempts_used_up_end_in_the_final_action() -> None:
    result = plan(attempts_made=5)
    assert (result.action, result.at, result.final_action) == ("final", None, "cancel_subscription")
    assert result.email_template == "final_notice"
    assert "attempts used up (5 of 5)" in result.explanation


def test_a_window_that_has_passed_ends_in_the_final_action() -> None:
    result = plan(attempts_made=2, first_failed_at=NOW - timedelta(days=14))
    assert result.action == "final"
    assert "no slot before the window ends" in result.explanation


def test_an_await_past_the_window_is_final_and_a_deadline_never_outlives_it() -> None:
    late = plan(category="HARD_DECLINE", first_failed_at=NOW - timedelta(days=15))
    assert late.action == "final" and "14-day window has passed" in late.explanation
    capped = plan(category="HARD_DECLINE", first_failed_at=NOW - timedelta(days=10))
    assert capped.at == NOW + timedelta(days=4)


def test_a_full_visa_budget_pushes_the_retry_until_a_slot_frees_up() -> None:
    history = tuple(NOW - timedelta(days=20) + timedelta(hours=h) for h in range(15))
    result = plan(card_history=history)
    assert result.action == "retry"
    assert result.at is not None and result.at >= NOW + timedelta(days=10)
    assert "Visa budget used up: 15/15 attempts in 30 days" in result.explanation


def test_a_budget_that_frees_up_only_after_the_window_ends_the_case() -> None:
    history = tuple(NOW - timedelta(days=2) + timedelta(hours=h) for h in range(15))
    result = plan(card_history=history)
    assert result.action == "final"
    assert "Visa budget used up" in result.explanation


def test_a_slot_that_never_settles_under_the_network_rules_ends_the_case() -> None:
    # Attempts by another engine every 23 hours: each slot we find is blocked by the next one.
    history = tuple(NOW + timedelta(hours=23 * k) for k in range(20))
    result = plan(
        category="RATE_LIMITED", reason="rate_limit", card_history=history, limits=NetworkLimits(per_day=1)
    )
    assert result.action == "final"


def test_the_providers_minimum_delay_is_respected() -> None:
    result = plan(category="RATE_LIMITED", reason="rate_limit", min_delay_seconds=3600)
    assert result.at == NOW + timedelta(hours=1)
    assert "not before 1h00m from now" in result.explanation


def test_transient_errors_do_not_email_the_customer() -> None:
    assert plan(category="NETWORK_ERROR", reason="processing_error").email_template is None
    assert plan().email_template == "payment_failed"


def test_a_late_ladder_step_still_leaves_half_its_gap_after_the_previous_try() -> None:
    result = plan(attempts_made=2, now=NOW + timedelta(days=2, hours=23), card_history=(NOW,))
    assert result.at == datetime(
        2026, 3, 9, 8, 0, tzinfo=UTC
    )  # Fri 06 13:30 + 1 day → Sat → Mon 09:00 Berlin


def test_the_profiles_own_time_zone_wins_over_its_countrys() -> None:
    profile = CustomerProfile(customer_id="cus_1", country="DE", timezone="America/Los_Angeles")
    assert "America/Los_Angeles" in plan(profile=profile).explanation


def test_the_first_failure_alert_fires_only_for_a_customer_who_never_failed_before() -> None:
    strategy = default_book().get("new_customer", 1)
    fresh = CustomerProfile(customer_id="cus_n", country="US", past_failures=0)
    assert plan(strategy=strategy, profile=fresh).alert == "first_failure"
    assert plan(strategy=strategy, profile=fresh, attempts_made=2).alert is None
    assert plan(strategy=strategy).alert is None


def test_the_same_inputs_always_give_the_same_plan() -> None:
    first = plan(category="NETWORK_ERROR", reason="processing_error", attempts_made=4, seed=42)
    assert first == plan(category="NETWORK_ERROR", reason="processing_error", attempts_made=4, seed=42)
    other = plan(category="NETWORK_ERROR", reason="processing_error", attempts_made=4, seed=43)
    assert other.at != first.at


def test_attempts_made_starts_at_one() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        plan(attempts_made=0)


def test_business_hours_that_never_meet_a_business_day_are_a_strategy_error() -> None:
    weekend_only = STANDARD.model_copy(update={"business_hours": BusinessHours(weekdays=("sat",))})
    with pytest.raises(StrategyError, match="never fall on a business day"):
        plan(strategy=weekend_only)


def test_without_business_hours_a_ladder_retry_keeps_its_exact_offset() -> None:
    anytime = STANDARD.model_copy(update={"business_hours": None})
    assert plan(strategy=anytime).at == NOW + timedelta(days=1)
