"""Tenure reaches the segment rules: `customer_since` on the customer state, unknown tenure is not "new"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from actors.domain.case import empty_state
from actors.domain.strategy_planner import StrategyPlanner, profile_of
from strategies.loader import default_segments
from strategies.segments import CustomerProfile, select_segment

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CLASSIFICATION = {"category": "SOFT_DECLINE", "reason": "generic_decline", "retryable": True, "raw_codes": {}}


def customer(since: datetime | str | None, **extra: Any) -> dict[str, Any]:
    state = {**empty_state("t1", "cus_1"), "failures": 1, "first_failure_at": NOW.isoformat(),
             "last_failure_at": NOW.isoformat(), **extra}
    if since is not None:
        state["customer_since"] = since.isoformat() if isinstance(since, datetime) else since
    return state


def case(amount: int, currency: str = "usd", country: str = "US") -> dict[str, Any]:
    return {"invoice_id": "in_1", "amount_due": amount, "currency": currency, "attempts_made": 0,
            "provider_failures": 1, "first_failed_at": NOW.isoformat(), "card": {"card_country": country,
                                                                                  "card_brand": "visa"}}


def segment(since: datetime | str | None, amount: int, **kw: str) -> str:
    return select_segment(default_segments(), profile_of(customer(since), case(amount, **kw), now=NOW)).segment


def test_tenure_is_the_whole_days_since_the_customer_became_one() -> None:
    profile = profile_of(customer(NOW - timedelta(days=400, hours=5)), case(5000), now=NOW)
    assert profile.tenure_days == 400


def test_a_customer_since_in_the_future_clamps_to_zero() -> None:
    assert profile_of(customer(NOW + timedelta(days=2)), case(5000), now=NOW).tenure_days == 0


def test_a_utc_z_suffix_and_a_naive_timestamp_are_read_as_utc() -> None:
    assert profile_of(customer("2025-03-02T09:00:00Z"), case(5000), now=NOW).tenure_days == 365
    assert profile_of(customer("2025-03-02T09:00:00"), case(5000), now=NOW).tenure_days == 365


@pytest.mark.parametrize(
    ("amount", "expected"),
    [(50000, "high_value"), (49999, "default"), (1001, "default"), (1000, "low_value"), (900, "low_value"),
     (5000, "default")],
)
def test_established_customers_reach_the_value_segments_at_the_thresholds(amount: int, expected: str) -> None:
    assert segment(NOW - timedelta(days=200), amount) == expected


def test_an_established_european_customer_reaches_the_geography_segment() -> None:
    assert segment(NOW - timedelta(days=200), 5000, currency="eur", country="DE") == "eu_sca"


def test_a_customer_of_a_few_days_is_new() -> None:
    assert segment(NOW - timedelta(days=10), 60000) == "new_customer"
    assert segment(NOW - timedelta(days=30, hours=23), 60000) == "new_customer"
    assert segment(NOW - timedelta(days=31), 60000) == "high_value"


@pytest.mark.parametrize("since", [None, ""])
def test_an_unknown_tenure_is_none_and_never_new_customer(since: str | None) -> None:
    state = customer(None)
    if since is not None:
        state["customer_since"] = since
    profile = profile_of(state, case(5000), now=NOW)
    assert profile.tenure_days is None
    assert select_segment(default_segments(), profile).segment == "default"
    assert segment(None, 60000) == "high_value"
    assert segment(None, 900) == "low_value"


def test_an_unknown_tenure_matches_neither_a_minimum_nor_a_maximum() -> None:
    assert CustomerProfile(customer_id="c").tenure_days is None
    loyal = CustomerProfile(customer_id="c", country="US", past_failures=0, mrr=5000)
    assert select_segment(default_segments(), loyal).segment == "default"


def test_a_tenure_given_through_the_profile_api_wins() -> None:
    state = customer(NOW - timedelta(days=400), profile={"tenure_days": 3})
    assert profile_of(state, case(5000), now=NOW).tenure_days == 3


def test_the_plan_records_the_segment_and_no_first_failure_alert_for_established_customers() -> None:
    planner = StrategyPlanner()
    state = {**customer(NOW - timedelta(days=200)), "failures": 1}
    plan = planner.plan(customer=state, case=case(60000), classification=CLASSIFICATION, now=NOW,
                        card_history=[])
    assert plan.strategy["segment"] == "high_value" and plan.alert is None
    unknown = planner.plan(customer={**customer(None), "failures": 1}, case=case(5000),
                           classification=CLASSIFICATION, now=NOW, card_history=[])
    assert unknown.strategy["segment"] == "default" and unknown.alert is None
    new = planner.plan(customer={**customer(NOW - timedelta(days=3)), "failures": 1}, case=case(5000),
                       classification=CLASSIFICATION, now=NOW, card_history=[])
    assert new.strategy["segment"] == "new_customer" and new.alert == "first_failure"
