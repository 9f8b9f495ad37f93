"""Segment selection: ordered rules, first match wins, one test per kind of rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from strategies.errors import StrategyError
from strategies.loader import check_references, default_book, default_segments, load_segments
from strategies.segments import (
    Conditions,
    CustomerProfile,
    SegmentRule,
    SegmentRules,
    matches,
    select_segment,
)


def profile(**fields: Any) -> CustomerProfile:
    base: dict[str, Any] = {"customer_id": "cus_1", "country": "US", "currency": "usd", "mrr": 5000}
    base.update(tenure_days=200, past_failures=1, days_since_last_failure=200)
    return CustomerProfile(**{**base, **fields})


def rules(*conditions: dict[str, Any]) -> SegmentRules:
    listed = [
        SegmentRule(segment=f"s{i}", strategy="aggressive", when=Conditions(**c))
        for i, c in enumerate(conditions)
    ]
    return SegmentRules(
        id="t",
        version=1,
        description="test",
        rules=(*listed, SegmentRule(segment="rest", strategy="standard")),
    )


def chosen(rule_set: SegmentRules, p: CustomerProfile) -> str:
    return select_segment(rule_set, p).segment


def test_the_first_matching_rule_wins_even_when_later_ones_match_too() -> None:
    choice = select_segment(rules({"min_mrr": {"usd": 1000}}, {"min_mrr": {"usd": 100}}), profile())
    assert (choice.segment, choice.strategy_id, choice.rule_index) == ("s0", "aggressive", 0)


def test_a_customer_matching_no_rule_falls_to_the_catch_all() -> None:
    choice = select_segment(rules({"min_mrr": {"usd": 10**9}}), profile())
    assert (choice.segment, choice.strategy_id, choice.rule_index) == ("rest", "standard", 1)


@pytest.mark.parametrize(
    ("when", "fields", "expected"),
    [
        ({"min_mrr": {"usd": 5000}}, {}, True),
        ({"min_mrr": {"usd": 5001}}, {}, False),
        ({"max_mrr": {"usd": 5000}}, {}, True),
        ({"min_mrr": {"eur": 100}}, {}, False),  # a currency the rule does not list never matches
        ({"min_invoice_amount": {"usd": 100000}}, {"invoice_amount": 100000}, True),
        ({"max_invoice_amount": {"usd": 100}}, {"invoice_amount": 101}, False),
    ],
)
def test_customer_value_thresholds_are_per_currency(
    when: dict[str, Any], fields: dict[str, Any], expected: bool
) -> None:
    assert (chosen(rules(when), profile(**fields)) == "s0") is expected


@pytest.mark.parametrize(
    ("when", "country", "expected"),
    [
        ({"countries": ["DE", "FR"]}, "de", True),
        ({"countries": ["DE", "FR"]}, "US", False),
        ({"countries": ["DE"]}, None, False),
        ({"sca_region": True}, "IE", True),
        ({"sca_region": True}, "GB", True),
        ({"sca_region": True}, "US", False),
        ({"sca_region": False}, "US", True),
        ({"sca_region": True}, None, False),
    ],
)
def test_geography_matches_countries_and_the_sca_region(
    when: dict[str, Any], country: str | None, expected: bool
) -> None:
    assert (chosen(rules(when), profile(country=country)) == "s0") is expected


@pytest.mark.parametrize(
    ("when", "fields", "expected"),
    [
        ({"max_tenure_days": 30}, {"tenure_days": 30}, True),
        ({"min_tenure_days": 365}, {"tenure_days": 364}, False),
        ({"first_failure": True}, {"past_failures": 0, "days_since_last_failure": None}, True),
        ({"first_failure": True}, {"past_failures": 2}, False),
        ({"first_failure": False}, {"past_failures": 2}, True),
        ({"min_past_failures": 3}, {"past_failures": 3}, True),
        ({"max_past_failures": 0}, {"past_failures": 1}, False),
        ({"min_past_recoveries": 1}, {"past_recoveries": 2}, True),
        ({"max_past_recoveries": 1}, {"past_recoveries": 2}, False),
        ({"max_days_since_last_failure": 30}, {"days_since_last_failure": 10}, True),
        ({"max_days_since_last_failure": 30}, {"days_since_last_failure": None}, False),
        ({"min_days_since_last_failure": 90}, {"days_since_last_failure": None}, True),
        ({"min_days_since_last_failure": 90}, {"days_since_last_failure": 10}, False),
    ],
)
def test_history_rules_read_tenure_failures_recoveries_and_recency(
    when: dict[str, Any], fields: dict[str, Any], expected: bool
) -> None:
    assert (chosen(rules(when), profile(**fields)) == "s0") is expected


@pytest.mark.parametrize(
    ("when", "fields", "expected"),
    [
        ({"plans": ["enterprise"]}, {"plan": "enterprise"}, True),
        ({"plans": ["enterprise"]}, {"plan": None}, False),
        ({"tags_any": ["vip", "partner"]}, {"tags": {"partner"}}, True),
        ({"tags_any": ["vip"]}, {"tags": set()}, False),
        ({"tags_all": ["vip", "eu"]}, {"tags": {"vip", "eu", "x"}}, True),
        ({"tags_all": ["vip", "eu"]}, {"tags": {"vip"}}, False),
    ],
)
def test_plan_and_tag_rules(when: dict[str, Any], fields: dict[str, Any], expected: bool) -> None:
    assert (chosen(rules(when), profile(**fields)) == "s0") is expected


def test_every_condition_of_a_rule_must_hold() -> None:
    when = Conditions(min_mrr={"usd": 1000}, countries=frozenset({"US"}), min_past_failures=5)
    assert not matches(when, profile(), sca=False)
    assert matches(when, profile(past_failures=5), sca=False)


def test_a_profile_without_country_or_timezone_is_valid() -> None:
    bare = CustomerProfile(customer_id="cus_2")
    assert bare.currency == "usd" and bare.is_first_failure and bare.tags == frozenset()


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"tenure_days": 5}, "new_customer"),
        ({"mrr": 60000}, "high_value"),
        ({"currency": "eur", "country": "FR", "mrr": 45000}, "high_value"),
        ({"invoice_amount": 250000}, "large_invoice"),
        ({"plan": "enterprise"}, "key_account"),
        ({"tags": {"vip"}}, "vip"),
        ({"tenure_days": 800, "past_failures": 0, "days_since_last_failure": None}, "loyal_first_failure"),
        ({"past_failures": 4, "days_since_last_failure": 20}, "chronic_failer"),
        ({"mrr": 900}, "low_value"),
        ({"country": "DE", "currency": "eur"}, "eu_sca"),
        ({}, "default"),
    ],
)
def test_the_shipped_rules_segment_customers_as_documented(fields: dict[str, Any], expected: str) -> None:
    assert select_segment(default_segments(), profile(**fields)).segment == expected


def test_the_shipped_rules_name_only_shipped_strategies() -> None:
    check_references(default_segments(), default_book())


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "segments.json"
    path.write_text(body, encoding="utf-8")
    return path


CATCH_ALL = '{"segment": "rest", "strategy": "standard", "when": {}}'


@pytest.mark.parametrize(
    ("rules_json", "field", "reason"),
    [
        (
            f'[{{"segment": "a", "strategy": "standard", "when": {{"min_mrr": 5}}}}, {CATCH_ALL}]',
            "rules.0.when.min_mrr",
            "",
        ),
        (
            f'[{{"segment": "a", "strategy": "x", "when": {{"shoe_size": 5}}}}, {CATCH_ALL}]',
            "rules.0.when.shoe_size",
            "unknown key",
        ),
        (
            f'[{{"segment": "a", "strategy": "x", "when": {{"min_mrr": {{"USD": 5}}}}}}, {CATCH_ALL}]',
            "rules.0.when.min_mrr",
            "lower-case ISO 4217",
        ),
        (
            f'[{{"segment": "a", "strategy": "x", "when": {{"countries": ["de"]}}}}, {CATCH_ALL}]',
            "rules.0.when.countries",
            "upper-case",
        ),
        (f"[{CATCH_ALL}, {CATCH_ALL}]", "rules", "segment names must be unique (rest)"),
        (
            '[{"segment": "a", "strategy": "x", "when": {"min_mrr": {"usd": 1}}}]',
            "rules.0.when",
            "the last rule must match everyone",
        ),
        ("[]", "rules", "at least 1 item"),
        (
            f'[{{"segment": "Bad Name", "strategy": "x"}}, {CATCH_ALL}]',
            "rules.0.segment",
            "should match pattern",
        ),
    ],
)
def test_an_invalid_segment_file_names_the_field_and_reason(
    tmp_path: Path, rules_json: str, field: str, reason: str
) -> None:
    path = write(tmp_path, f'{{"id": "s", "version": 1, "description": "d", "rules": {rules_json}}}')
    with pytest.raises(StrategyError) as caught:
        load_segments(path)
    assert caught.value.field == field
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"{path}: {field}: ")


def test_a_segment_rule_naming_an_unknown_strategy_is_rejected(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"id": "s", "version": 1, "description": "d", "rules": [{"segment": "a", "strategy": "nope"}]}',
    )
    with pytest.raises(StrategyError) as caught:
        check_references(load_segments(path), default_book(), file=str(path))
    assert caught.value.field == "rules.0.strategy"
    assert "unknown strategy 'nope'" in caught.value.reason
