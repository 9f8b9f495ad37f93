"""Analytics parameters and metric shaping (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from actors.domain import analytics as a


def test_a_date_means_midnight_utc_and_a_naive_time_is_utc() -> None:
    assert a.parse_time("from", "2025-03-01") == datetime(2025, 3, 1, tzinfo=UTC)
    assert a.parse_time("from", "2025-03-01T10:30:00") == datetime(2025, 3, 1, 10, 30, tzinfo=UTC)


def test_an_explicit_offset_is_kept() -> None:
    value = a.parse_time("to", "2025-03-01T10:30:00+02:00")
    assert value.utcoffset() == timedelta(hours=2) and value == datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
    assert value.tzinfo == timezone(timedelta(hours=2))


@pytest.mark.parametrize("raw", ["yesterday", "2025-13-01", "2025-03-01T25:00", ""])
def test_a_malformed_time_names_its_parameter(raw: str) -> None:
    with pytest.raises(a.ParameterError) as caught:
        a.parse_time("from", raw)
    assert caught.value.parameter == "from" and repr(raw) in str(caught.value)


def test_a_window_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(a.ParameterError) as caught:
        a.parse_window({"from": "2025-03-02", "to": "2025-03-01"})
    assert caught.value.parameter == "from"


def test_an_open_window_has_no_bounds() -> None:
    assert a.parse_window({}) == a.Window()


def test_an_unknown_parameter_is_refused_by_name() -> None:
    with pytest.raises(a.ParameterError) as caught:
        a.check_known({"form": "2025-03-01"}, frozenset({"from", "to"}))
    assert caught.value.parameter == "form"


@pytest.mark.parametrize(
    ("params", "parameter"),
    [({"state": "lost"}, "state"), ({"category": "soft"}, "category"), ({"limit": "0"}, "limit"),
     ({"limit": "1001"}, "limit"), ({"limit": "ten"}, "limit"), ({"after": "not-a-cursor"}, "after"),
     ({"to": "soon"}, "to")],
)  # fmt: skip
def test_bad_case_filters_name_the_parameter(params: dict[str, str], parameter: str) -> None:
    with pytest.raises(a.ParameterError) as caught:
        a.parse_case_filters(params)
    assert caught.value.parameter == parameter


def test_case_filters_are_parsed() -> None:
    f = a.parse_case_filters({"state": "recovered", "category": "SOFT_DECLINE", "provider": "stripe",
                              "strategy": "default@2", "limit": "5", "from": "2025-03-01"})  # fmt: skip
    assert (f.state, f.category, f.provider, f.strategy, f.limit) == ("recovered", "SOFT_DECLINE", "stripe",
                                                                      "default@2", 5)  # fmt: skip
    assert f.window.start == datetime(2025, 3, 1, tzinfo=UTC) and f.window.end is None


def test_a_cursor_round_trips() -> None:
    row = {"first_failed_at": datetime(2025, 3, 1, 9, tzinfo=UTC), "customer_id": "cus_1", "invoice_id": "in_1"}
    after = a.parse_case_filters({"after": a.encode_cursor(row)}).after
    assert after == ("2025-03-01T09:00:00+00:00", "cus_1", "in_1")


def test_metrics_compute_rates_from_sums() -> None:
    row = {"cases": 4, "failed_amount": Decimal(10000), "open_cases": 1, "revenue_at_risk": Decimal(2500),
           "recovered_cases": 2, "recovered_revenue": Decimal(4000), "lost_cases": 1, "lost_amount": 3500,
           "retries": Decimal(5), "ttr_median": 5400.0, "ttr_p90": 9720.04}  # fmt: skip
    m = a.metrics(row)
    assert m["recovery_rate"] == 0.5 and m["amount_recovery_rate"] == 0.4
    assert m["retries_per_recovery"] == 2.5
    assert m["time_to_recover_median_seconds"] == 5400.0 and m["time_to_recover_p90_seconds"] == 9720.0
    assert m["revenue_at_risk"] == 2500 and isinstance(m["failed_amount"], int)


def test_metrics_without_cases_or_recoveries_have_no_rates() -> None:
    m = a.metrics({"cases": 0, "failed_amount": None, "ttr_median": None})
    assert m["recovery_rate"] is None and m["retries_per_recovery"] is None
    assert m["failed_amount"] == 0 and m["time_to_recover_median_seconds"] is None


def test_summary_rows_are_split_into_totals_and_breakdowns_per_currency() -> None:
    rows: list[dict[str, Any]] = [
        {"dimension": "total", "key": None, "currency": "usd", "cases": 2},
        {"dimension": "total", "key": None, "currency": "eur", "cases": 1},
        {"dimension": "category", "key": "SOFT_DECLINE", "currency": "usd", "cases": 2},
        {"dimension": "provider", "key": "stripe", "currency": "eur", "cases": 1},
    ]
    shaped = a.shape_summary(rows)
    assert [(t["currency"], t["cases"]) for t in shaped["totals"]] == [("eur", 1), ("usd", 2)]
    assert [(r["category"], r["currency"]) for r in shaped["by"]["category"]] == [("SOFT_DECLINE", "usd")]
    assert shaped["by"]["provider"][0]["provider"] == "stripe" and shaped["by"]["segment"] == []


def test_daily_joins_the_cohort_and_the_activity_of_each_day() -> None:
    cohort = [{"day": "2025-03-01", "currency": "usd", "cases": 2, "recovered_cases": 1}]
    activity = [{"day": "2025-03-01", "currency": "usd", "failures": 3, "failed_amount": 6000},
                {"day": "2025-03-02", "currency": "usd", "recoveries": 1, "recovered_amount": 2000}]  # fmt: skip
    days = a.shape_daily(cohort, activity)
    assert [(d["day"], d["cohort"]["cases"], d["activity"]["failures"]) for d in days] == [
        ("2025-03-01", 2, 3), ("2025-03-02", 0, 0)]  # fmt: skip
    assert days[0]["cohort"]["recovery_rate"] == 0.5 and days[1]["activity"]["recovered_amount"] == 2000


def test_the_read_model_breaks_down_by_the_dimensions_the_core_defines() -> None:
    from actors.domain.analytics import DIMENSIONS
    from store.analytics import DIMENSIONS as STORED

    assert STORED == DIMENSIONS


def test_the_uplift_from_database_sums_equals_the_uplift_from_every_case() -> None:
    import random

    from actors.domain.analytics import holdout_uplift, holdout_uplift_from_sums

    rng = random.Random(5)
    cases = [{"arm": "holdout" if rng.random() < 0.1 else "treatment", "currency": rng.choice(["usd", "eur"]),
              "amount_due": (x := rng.randint(100, 50_000)), "recovered_amount": x if rng.random() < 0.5 else 0}
             for _ in range(4000)]
    sums: dict[tuple[str, str], dict[str, float]] = {}
    for c in cases:
        s = sums.setdefault((c["currency"], c["arm"]), {"n": 0, "sx": 0, "sy": 0, "sxx": 0, "sxy": 0, "syy": 0})
        x, y = c["amount_due"], c["recovered_amount"]
        for key, value in (("n", 1), ("sx", x), ("sy", y), ("sxx", x * x), ("sxy", x * y), ("syy", y * y)):
            s[key] += value
    rows = [{"currency": cur, "arm": arm, **s} for (cur, arm), s in sums.items()]
    assert holdout_uplift_from_sums(rows) == holdout_uplift(cases)
    assert holdout_uplift_from_sums([r for r in rows if r["arm"] == "treatment"])[0]["uplift"] is None
