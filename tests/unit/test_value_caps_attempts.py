"""retry_timing with an attempt cost (v3 templates): retries last while their expected revenue covers an attempt's
cost, and for the reasons the timing model knows that rule replaces the classification's static attempt cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from strategies.learned import prior_model
from strategies.loader import default_book
from strategies.network import NetworkLimits
from strategies.planner import RetryPlan, plan_next
from strategies.schedules import LearnedSchedule
from strategies.segments import CustomerProfile

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
BOOK = default_book()


def next_plan(reason: str, made: int, *, amount: int = 2900, cap: int | None = 4, version: int | None = None,
              history: list[datetime] | None = None) -> RetryPlan:
    now = T0 + timedelta(days=made)
    return plan_next(
        BOOK.get("standard", version), category="SOFT_DECLINE", reason=reason, attempts_made=made,
        first_failed_at=T0, now=now, profile=CustomerProfile(customer_id="c", country="US", invoice_amount=amount),
        card_history=[*(history or []), now], brand="visa", visa_category=4, mc_advice_code=None,
        min_delay_seconds=0, seed=1, limits=NetworkLimits(), segment="default", max_attempts_cap=cap,
        timing=prior_model())


def charges_until_final(reason: str, amount: int, cap: int | None = 4, version: int | None = None) -> int:
    """Fail every retry; the number of charges (the original included) before the plan goes final."""
    made, history = 1, [T0]
    while (plan := next_plan(reason, made, amount=amount, cap=cap, version=version, history=history)).action == "retry":
        assert plan.at is not None
        made, history = made + 1, [*history, plan.at]
    return made


def test_a_known_reasons_classification_cap_yields_to_the_expected_value_rule_and_says_so() -> None:
    plan = next_plan("generic_decline", 4)
    assert plan.action == "retry" and plan.max_attempts == 7
    assert "the classification's cap of 4 yields to the expected-value rule" in plan.explanation


def test_an_unknown_code_keeps_its_classification_cap() -> None:
    plan = next_plan("unknown_code", 2, cap=2)
    assert plan.action == "final" and "capped at 2 by the classification" in plan.explanation


def test_strategies_that_do_not_opt_in_keep_the_cap_so_old_decisions_replay() -> None:
    assert next_plan("generic_decline", 4, version=2).action == "final"
    v2 = BOOK.get("standard", 2).categories["SOFT_DECLINE"].schedule
    assert isinstance(v2, LearnedSchedule) and not v2.value_caps_attempts and v2.attempt_cost == {}


def test_a_large_invoice_earns_more_retries_than_a_small_one() -> None:
    small, large = charges_until_final("generic_decline", 900), charges_until_final("generic_decline", 9900)
    assert small < large <= BOOK.get("standard").categories["SOFT_DECLINE"].max_attempts  # type: ignore[union-attr]


def test_a_retry_too_small_to_cover_its_cost_goes_final_and_names_the_cost() -> None:
    plan = next_plan("generic_decline", 1, amount=300)
    assert plan.action == "final" and "expected revenue ≥ 150 usd" in plan.explanation


def test_an_unknown_amount_is_not_treated_as_a_small_one() -> None:
    assert next_plan("generic_decline", 1, amount=0).action == "retry"


def test_the_cost_is_per_currency_with_a_fallback() -> None:
    schedule = LearnedSchedule(type="learned", attempt_cost={"jpy": 200, "*": 150})
    assert (schedule.cost("JPY"), schedule.cost("usd"), LearnedSchedule(type="learned").cost("usd")) == (200, 150, 0)


@pytest.mark.parametrize("key", ["USD", "dollars", ""])
def test_an_attempt_cost_must_name_a_lower_case_currency_or_star(key: str) -> None:
    with pytest.raises(ValidationError, match="attempt_cost"):
        LearnedSchedule(type="learned", attempt_cost={key: 100})
