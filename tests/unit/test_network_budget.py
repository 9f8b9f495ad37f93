"""Card-network retry budget: Visa categories, Mastercard advice codes, rolling 30-day and 24-hour caps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from strategies.network import (
    NetworkLimits,
    budget_label,
    check_network_budget,
    needs_new_details,
    network_of,
    permanent_stop,
)

AT = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
LIMITS = NetworkLimits()


def days_before(*days: float) -> list[datetime]:
    return [AT - timedelta(days=d) for d in days]


def test_visa_category_1_is_never_retried_and_says_why() -> None:
    verdict = check_network_budget(days_before(1), "visa", 1, None, AT, LIMITS)
    assert not verdict.allowed
    assert verdict.earliest_at is None
    assert "Visa category 1" in verdict.reason and "never retry" in verdict.reason


@pytest.mark.parametrize("category", [2, 3, 4, None])
def test_visa_retries_are_allowed_while_the_30_day_budget_lasts(category: int | None) -> None:
    verdict = check_network_budget(days_before(1, 2, 3, 4), "visa", category, None, AT, LIMITS)
    assert verdict.allowed
    assert (verdict.used, verdict.limit) == (4, 15)
    assert verdict.reason == "Visa budget 11/15 left"


def test_the_sixteenth_visa_attempt_in_30_days_waits_until_the_oldest_ages_out() -> None:
    history = days_before(*[1 + i for i in range(15)])  # 15 attempts, the oldest 15 days ago
    verdict = check_network_budget(history, "visa", 2, None, AT, LIMITS)
    assert not verdict.allowed
    assert verdict.used == 15
    assert verdict.earliest_at == AT - timedelta(days=15) + timedelta(days=30)
    assert verdict.reason == "Visa budget used up: 15/15 attempts in 30 days"


def test_attempts_older_than_30_days_do_not_count() -> None:
    history = days_before(*[30 + i for i in range(20)])
    verdict = check_network_budget(history, "visa", 4, None, AT, LIMITS)
    assert verdict.allowed and verdict.used == 0


def test_the_visa_budget_is_configurable_for_regions_that_allow_20() -> None:
    history = days_before(*[1 + i for i in range(15)])
    verdict = check_network_budget(history, "visa", 2, None, AT, NetworkLimits(visa_per_30d=20))
    assert verdict.allowed and verdict.reason == "Visa budget 5/20 left"


@pytest.mark.parametrize("code", ["03", "21"])
def test_mastercard_advice_03_and_21_stop_for_good(code: str) -> None:
    verdict = check_network_budget(days_before(1), "mastercard", None, code, AT, LIMITS)
    assert not verdict.allowed and verdict.earliest_at is None
    assert f"Mastercard advice {code}" in verdict.reason


@pytest.mark.parametrize(
    ("code", "hours"), [("24", 1), ("25", 24), ("26", 48), ("27", 96), ("28", 144), ("29", 192), ("30", 240)]
)
def test_mastercard_advice_24_to_30_set_the_earliest_retry(code: str, hours: int) -> None:
    last = AT - timedelta(minutes=30)
    verdict = check_network_budget([last], "mastercard", None, code, AT, LIMITS)
    assert not verdict.allowed
    assert verdict.earliest_at == last + timedelta(hours=hours)
    later = check_network_budget([last], "mastercard", None, code, last + timedelta(hours=hours), LIMITS)
    assert later.allowed


def test_an_advice_wait_without_any_recorded_attempt_has_nothing_to_wait_from() -> None:
    assert check_network_budget([], "mastercard", None, "30", AT, LIMITS).allowed


def test_mastercard_allows_35_declines_per_30_days() -> None:
    history = [AT - timedelta(hours=20 * (i + 1)) for i in range(35)]
    assert not check_network_budget(history, "mastercard", None, None, AT, LIMITS).allowed
    assert check_network_budget(history[:34], "mc", None, None, AT, LIMITS).allowed


def test_the_per_day_cap_blocks_an_eleventh_attempt_within_24_hours() -> None:
    history = [AT - timedelta(hours=i + 1) for i in range(10)]
    verdict = check_network_budget(history, "amex", None, None, AT, LIMITS)
    assert not verdict.allowed
    assert verdict.earliest_at == AT - timedelta(hours=10) + timedelta(days=1)
    assert verdict.reason.startswith("per-day cap reached: 10/10")


def test_the_per_day_cap_is_configurable() -> None:
    history = [AT - timedelta(hours=1), AT - timedelta(hours=2)]
    assert not check_network_budget(history, "visa", 2, None, AT, NetworkLimits(per_day=2)).allowed


def test_other_brands_share_the_same_counters_and_can_be_uncapped() -> None:
    history = days_before(*[1 + i for i in range(15)])
    assert not check_network_budget(history, "discover", None, None, AT, LIMITS).allowed
    verdict = check_network_budget(history[:5], None, None, None, AT, NetworkLimits(other_per_30d=None))
    assert verdict.allowed and verdict.limit is None and verdict.reason == "card budget unlimited"


def test_attempts_after_the_checked_moment_are_ignored() -> None:
    history = [AT + timedelta(hours=i + 1) for i in range(20)]
    assert check_network_budget(history, "visa", 2, None, AT, LIMITS).used == 0


def test_brand_spellings_of_every_provider_map_to_one_network() -> None:
    assert [network_of(b) for b in ("Visa", "MasterCard", "mc", " mastercard ", "amex", None)] == [
        "visa",
        "mastercard",
        "mastercard",
        "mastercard",
        "other",
        "other",
    ]
    assert budget_label("MC") == "Mastercard"


def test_category_3_and_advice_01_ask_for_new_details_before_a_retry() -> None:
    assert needs_new_details(3, None) is not None
    assert needs_new_details(None, "01") is not None
    assert needs_new_details(2, "24") is None
    assert permanent_stop(2, "24", LIMITS) is None
