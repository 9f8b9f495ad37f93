"""Every way a rule file can be wrong stops loading with one line naming file, field and reason."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from strategies.calendar import load_countries
from strategies.errors import StrategyError
from strategies.loader import TEMPLATES_DIR, load_strategies, load_template

Doc = dict[str, Any]
BASE: Doc = json.loads((TEMPLATES_DIR / "standard.json").read_text(encoding="utf-8"))
SOFT = ("categories", "SOFT_DECLINE")


def edit(path: tuple[str, ...], value: Any) -> Callable[[Doc], None]:
    def apply(doc: Doc) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return apply


def drop(path: tuple[str, ...]) -> Callable[[Doc], None]:
    def apply(doc: Doc) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return apply


LADDER = {"type": "ladder", "unit": "days", "steps": [1, 3, 7, 12]}
EXPONENTIAL = {"type": "exponential", "base_seconds": 30, "factor": 2, "cap_seconds": 3600, "jitter": 0.2}
LONG_LADDER = {"type": "ladder", "unit": "days", "steps": [1, 2, 3, 4, 5, 6, 7]}
R = "categories.SOFT_DECLINE.retry"

CASES: list[tuple[str, Callable[[Doc], None], str, str]] = [
    ("unknown top-level key", edit(("colour",), "red"), "colour", "unknown key"),
    ("unknown key in a policy", edit((*SOFT, "speed"), 3), f"{R}.speed", "unknown key"),
    ("missing description", drop(("description",)), "description", "required key is missing"),
    ("missing final action", drop(("final_action",)), "final_action", "required key is missing"),
    ("version zero", edit(("version",), 0), "version", "greater than or equal to 1"),
    ("id with spaces", edit(("id",), "My Strategy"), "id", "should match pattern"),
    (
        "non-increasing ladder",
        edit((*SOFT, "schedule", "steps"), [1, 3, 3, 12]),
        f"{R}.schedule.ladder.steps",
        "ladder must strictly increase: step 3 (3) is not after 3",
    ),
    (
        "decreasing ladder",
        edit((*SOFT, "schedule", "steps"), [5, 2, 7, 12]),
        f"{R}.schedule.ladder.steps",
        "ladder must strictly increase",
    ),
    (
        "ladder step past the window",
        edit((*SOFT, "schedule", "steps"), [1, 3, 7, 20]),
        f"{R}.schedule",
        "retry 4 at 20 days, 0:00:00 is past max_window_days 14",
    ),
    (
        "ladder shorter than the attempts",
        edit((*SOFT, "schedule", "steps"), [1, 3]),
        f"{R}.schedule.steps",
        "2 steps cannot cover max_attempts 5",
    ),
    (
        "more attempts than the Visa 30-day budget",
        edit((*SOFT, "max_attempts"), 16),
        f"{R}.max_attempts",
        "less than or equal to 15",
    ),
    (
        "window past 60 days",
        edit((*SOFT, "max_window_days"), 61),
        f"{R}.max_window_days",
        "less than or equal to 60",
    ),
    (
        "more than 10 attempts in 24 hours",
        edit(("categories", "RATE_LIMITED", "max_attempts"), 12),
        "categories.RATE_LIMITED.retry.schedule",
        "12 attempts within 24 h exceed the network cap of 10",
    ),
    (
        "unknown category",
        edit(("categories", "BAD_LUCK"), {"action": "halt"}),
        "categories.BAD_LUCK",
        "Input should be 'HARD_DECLINE'",
    ),
    ("missing category", drop(("categories", "FRAUD_FLAGGED")), "categories", "missing FRAUD_FLAGGED"),
    (
        "retrying a hard decline",
        edit(
            ("categories", "HARD_DECLINE"),
            {"action": "retry", "schedule": LADDER, "max_attempts": 5, "max_window_days": 14},
        ),
        "categories.HARD_DECLINE.action",
        "retry is not allowed; use await_customer or halt",
    ),
    (
        "retrying fraud",
        edit(
            ("categories", "FRAUD_FLAGGED"),
            {"action": "await_customer", "deadline_hours": 1, "max_window_days": 1},
        ),
        "categories.FRAUD_FLAGGED.action",
        "await_customer is not allowed; use halt",
    ),
    (
        "a ladder for rate limits",
        edit(("categories", "RATE_LIMITED", "schedule"), LONG_LADDER),
        "categories.RATE_LIMITED.schedule",
        "must be exponential",
    ),
    (
        "unknown schedule type",
        edit((*SOFT, "schedule"), {"type": "lunar"}),
        f"{R}.schedule",
        "does not match any of the expected tags",
    ),
    (
        "unknown action",
        edit(("categories", "CONFIG_ERROR"), {"action": "panic"}),
        "categories.CONFIG_ERROR",
        "does not match any of the expected tags",
    ),
    (
        "halt with a schedule",
        edit(("categories", "FRAUD_FLAGGED"), {"action": "halt", "schedule": LADDER}),
        "categories.FRAUD_FLAGGED.halt.schedule",
        "unknown key",
    ),
    (
        "unknown email template",
        edit(("emails",), [{"after_attempt": 1, "template": "hello"}]),
        "emails.0.template",
        "Input should be 'payment_failed'",
    ),
    (
        "emails out of order",
        edit(
            ("emails",),
            [
                {"after_attempt": 3, "template": "payment_failed"},
                {"after_attempt": 2, "template": "payment_failed"},
            ],
        ),
        "emails",
        "after_attempt must strictly increase (2 follows 3)",
    ),
    (
        "unknown final action",
        edit(("final_action",), "sue"),
        "final_action",
        "Input should be 'cancel_subscription'",
    ),
    (
        "backoff cap below base",
        edit(("categories", "RATE_LIMITED", "schedule"), {**EXPONENTIAL, "cap_seconds": 10}),
        "categories.RATE_LIMITED.retry.schedule.exponential",
        "cap_seconds (10) is below base_seconds (30)",
    ),
    (
        "jitter of 100 %",
        edit(("categories", "RATE_LIMITED", "schedule"), {**EXPONENTIAL, "jitter": 1}),
        "categories.RATE_LIMITED.retry.schedule.exponential.jitter",
        "less than 1",
    ),
    (
        "business hours ending before they start",
        edit(("business_hours",), {"start": "18:00", "end": "09:00"}),
        "business_hours",
        "end (09:00) must be after start (18:00)",
    ),
    (
        "unknown weekday",
        edit(("business_hours",), {"weekdays": ["funday"]}),
        "business_hours.weekdays.0",
        "Input should be 'mon'",
    ),
    (
        "no weekdays",
        edit(("business_hours",), {"weekdays": []}),
        "business_hours.weekdays",
        "at least 1 item",
    ),
    (
        "payday without pay dates",
        edit(
            (*SOFT, "reason_schedules", "insufficient_funds"),
            {"type": "payday", "days_of_month": [], "last_business_day": False},
        ),
        f"{R}.reason_schedules.insufficient_funds.payday",
        "needs days_of_month or last_business_day",
    ),
    (
        "pay date 32",
        edit((*SOFT, "reason_schedules", "insufficient_funds"), {"type": "payday", "days_of_month": [32]}),
        f"{R}.reason_schedules.insufficient_funds.payday.days_of_month.0",
        "less than or equal to 31",
    ),
    (
        "await without a deadline",
        drop(("categories", "AUTHENTICATION_REQUIRED", "deadline_hours")),
        "categories.AUTHENTICATION_REQUIRED.await_customer.deadline_hours",
        "required key is missing",
    ),
]


@pytest.mark.parametrize(("case", "change", "field", "reason"), CASES, ids=[c[0] for c in CASES])
def test_an_invalid_template_is_rejected_naming_file_field_and_reason(
    tmp_path: Path, case: str, change: Callable[[Doc], None], field: str, reason: str
) -> None:
    doc = copy.deepcopy(BASE)
    change(doc)
    path = tmp_path / f"{doc.get('id', 'standard')}.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(StrategyError) as caught:
        load_template(path)
    assert caught.value.file == str(path)
    assert caught.value.field == field, str(caught.value)
    assert reason in caught.value.reason, str(caught.value)
    assert str(caught.value) == f"{path}: {field}: {caught.value.reason}"
    assert "\n" not in str(caught.value)


def test_several_problems_are_counted_after_the_first(tmp_path: Path) -> None:
    doc = {**copy.deepcopy(BASE), "colour": "red", "size": 3}
    path = tmp_path / "standard.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(StrategyError, match=r"unknown key \(and 1 more problem\)"):
        load_template(path)


def test_a_file_that_is_not_json_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "standard.json"
    path.write_text('{\n  "id": "standard",\n  oops\n}', encoding="utf-8")
    with pytest.raises(StrategyError) as caught:
        load_template(path)
    assert caught.value.field == "-"
    assert caught.value.reason.startswith("invalid JSON at line 3 column 3")


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(StrategyError, match="cannot read file"):
        load_template(tmp_path / "absent.json")


def test_a_template_whose_id_differs_from_its_file_name_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "premium.json"
    path.write_text(json.dumps(BASE), encoding="utf-8")
    with pytest.raises(StrategyError) as caught:
        load_template(path)
    assert (caught.value.field, caught.value.reason) == (
        "id",
        "id 'standard' does not match the file name (expected standard.json)",
    )


def test_an_empty_templates_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(StrategyError, match=r"no strategy templates \(\*\.json\) found"):
        load_strategies(tmp_path)


def test_two_files_defining_the_same_id_and_version_are_rejected(tmp_path: Path) -> None:
    for name in ("standard.json", "standard.v1.json"):
        (tmp_path / name).write_text(json.dumps(BASE), encoding="utf-8")
    with pytest.raises(StrategyError) as caught:
        load_strategies(tmp_path)
    assert caught.value.field == "version"
    assert caught.value.reason.startswith("standard v1 is already defined in")


def test_versions_of_one_strategy_coexist_and_the_latest_is_the_default(tmp_path: Path) -> None:
    (tmp_path / "standard.json").write_text(json.dumps({**BASE, "version": 2}), encoding="utf-8")
    (tmp_path / "standard.v1.json").write_text(json.dumps(BASE), encoding="utf-8")
    book = load_strategies(tmp_path)
    assert book.get("standard").version == 2
    assert book.get("standard", 1).version == 1
    with pytest.raises(StrategyError, match="unknown strategy 'standard v3'"):
        book.get("standard", 3)
    with pytest.raises(StrategyError, match="unknown strategy 'premium'"):
        book.get("premium")


COUNTRIES_BASE: Doc = {
    "id": "c",
    "version": 1,
    "description": "d",
    "default": {"timezone": "UTC"},
    "countries": {},
}


@pytest.mark.parametrize(
    ("countries", "field", "reason"),
    [
        (
            {"DE": {"timezone": "Europe/Atlantis"}},
            "countries.DE.timezone",
            "unknown time zone 'Europe/Atlantis'",
        ),
        (
            {"de": {"timezone": "Europe/Berlin"}},
            "countries",
            "country code 'de' must be two upper-case letters",
        ),
        (
            {
                "DE": {
                    "timezone": "Europe/Berlin",
                    "weekend": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                }
            },
            "countries.DE.weekend",
            "the weekend cannot cover the whole week",
        ),
        (
            {"DE": {"timezone": "Europe/Berlin", "holidays": ["2026-02-30"]}},
            "countries.DE.holidays.0",
            "valid date",
        ),
        (
            {"DE": {"timezone": "Europe/Berlin", "sca": True, "currency": "eur"}},
            "countries.DE.currency",
            "unknown key",
        ),
    ],
)
def test_an_invalid_calendar_file_is_rejected(
    tmp_path: Path, countries: Doc, field: str, reason: str
) -> None:
    path = tmp_path / "countries.json"
    path.write_text(json.dumps({**COUNTRIES_BASE, "countries": countries}), encoding="utf-8")
    with pytest.raises(StrategyError) as caught:
        load_countries(path)
    assert caught.value.field == field
    assert reason in caught.value.reason
