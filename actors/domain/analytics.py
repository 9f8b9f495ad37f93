"""Recovery analytics: query parameters in, metrics out (pure).

A case belongs to a window when its *first failure* falls in it ([from, to), UTC); every metric describes that
cohort as it stands now. Amounts are minor units and are only ever added within one currency.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

Row = dict[str, Any]

CASE_STATES = frozenset({"classifying", "retry_scheduled", "retrying", "awaiting_customer", "escalated",
                         "halted", "recovered", "exhausted", "closed"})  # fmt: skip
OPEN_STATES = ("classifying", "retry_scheduled", "retrying", "awaiting_customer", "escalated")
LOST_STATES = ("exhausted", "halted", "closed")
CATEGORIES = frozenset({"HARD_DECLINE", "SOFT_DECLINE", "CONFIG_ERROR", "RATE_LIMITED", "FRAUD_FLAGGED",
                        "NETWORK_ERROR", "AUTHENTICATION_REQUIRED", "unclassified"})  # fmt: skip
#: `recovered_by`: what a recovery is credited to — `card_update` (the customer gave a new card while the case was
#: open), else how it was paid (`retry`: payrisk's attempt, `provider`: the provider or the customer), `open` if not
DIMENSIONS = ("category", "reason", "segment", "strategy", "provider", "recovered_by")
#: raw aggregates the SQL returns for each group
SUMS = ("cases", "failed_amount", "open_cases", "revenue_at_risk", "recovered_cases", "recovered_revenue",
        "lost_cases", "lost_amount", "retries")  # fmt: skip


class ParameterError(ValueError):
    """A query parameter is malformed; `parameter` names it."""

    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(f"{parameter}: {problem}")
        self.parameter = parameter
        self.problem = problem


class Window(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive


class CaseFilters(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    window: Window = Window()
    state: str | None = None
    category: str | None = None
    reason: str | None = None
    segment: str | None = None
    strategy: str | None = None  # a strategy id, or "id@version"
    provider: str | None = None
    customer: str | None = None
    amount_min: int | None = None  # amount due, minor units, inclusive
    amount_max: int | None = None
    limit: int = 100
    after: tuple[str, str, str] | None = None  # (first_failed_at ISO, customer, invoice) of the last row seen


def parse_time(name: str, raw: str) -> datetime:
    """An ISO 8601 date (midnight UTC) or date-time; a time without an offset is read as UTC."""
    try:
        value = datetime.fromisoformat(raw) if "T" in raw or " " in raw else _midnight(date.fromisoformat(raw))
    except ValueError:
        raise ParameterError(name, f"must be an ISO 8601 date or date-time, got {raw!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def check_known(params: Mapping[str, str], allowed: frozenset[str]) -> None:
    """Reject parameters the endpoint does not know (a typo must not silently widen a query)."""
    for name in params:
        if name not in allowed:
            raise ParameterError(name, f"unknown parameter; allowed: {', '.join(sorted(allowed))}")


def parse_window(params: Mapping[str, str]) -> Window:
    start = parse_time("from", params["from"]) if params.get("from") else None
    end = parse_time("to", params["to"]) if params.get("to") else None
    if start and end and start >= end:
        raise ParameterError("from", "must be before to")
    return Window(start=start, end=end)


def parse_limit(raw: str | None, default: int = 100, high: int = 1000) -> int:
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 20) or not 1 <= int(raw) <= high:
        raise ParameterError("limit", f"must be an integer between 1 and {high}, got {raw!r}")
    return int(raw)


def parse_case_filters(params: Mapping[str, str]) -> CaseFilters:
    state, category = params.get("state"), params.get("category")
    if state is not None and state not in CASE_STATES:
        raise ParameterError("state", f"must be one of {sorted(CASE_STATES)}, got {state!r}")
    if category is not None and category not in CATEGORIES:
        raise ParameterError("category", f"must be one of {sorted(CATEGORIES)}, got {category!r}")
    text = {k: params.get(k) for k in ("reason", "segment", "strategy", "provider", "customer")}
    after = decode_cursor(params["after"]) if params.get("after") else None
    return CaseFilters(
        window=parse_window(params),
        state=state,
        category=category,
        amount_min=parse_amount("amount_min", params.get("amount_min")),
        amount_max=parse_amount("amount_max", params.get("amount_max")),
        limit=parse_limit(params.get("limit")),
        after=after,
        **text,
    )


def parse_amount(name: str, raw: str | None) -> int | None:
    """An amount in minor units (a non-negative integer), or None when not given."""
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 15):
        raise ParameterError(name, f"must be a non-negative integer amount in minor units, got {raw!r}")
    return int(raw)


def encode_cursor(row: Row) -> str:
    """An opaque paging cursor after `row` (ordered by first failure, customer, invoice)."""
    key = [_iso(row["first_failed_at"]), row["customer_id"], row["invoice_id"]]
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> tuple[str, str, str]:
    try:
        if len(raw) > 2048:  # a cursor we issued is far shorter; a huge nested one would exhaust the stack
            raise ValueError("too long")
        key = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if not isinstance(key, list) or len(key) != 3 or not all(isinstance(k, str) and "\x00" not in k for k in key):
            raise ValueError("not three strings")
        parse_time("after", key[0])
        return key[0], key[1], key[2]
    except (ValueError, TypeError, IndexError, KeyError, RecursionError, binascii.Error):
        raise ParameterError("after", "is not a cursor this API returned") from None


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def ratio(numerator: float, denominator: float, digits: int = 4) -> float | None:
    """numerator / denominator rounded, or None when there is nothing to divide by."""
    return round(numerator / denominator, digits) if denominator else None


def metrics(row: Mapping[str, Any]) -> Row:
    """Raw sums of one group → the published metrics (rates and per-recovery figures added)."""
    sums = {name: int(row.get(name) or 0) for name in SUMS}
    return {
        **sums,
        "recovery_rate": ratio(sums["recovered_cases"], sums["cases"]),
        "amount_recovery_rate": ratio(sums["recovered_revenue"], sums["failed_amount"]),
        "retries_per_recovery": ratio(sums["retries"], sums["recovered_cases"], 2),
        "time_to_recover_median_seconds": _seconds(row.get("ttr_median")),
        "time_to_recover_p90_seconds": _seconds(row.get("ttr_p90")),
    }


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def shape_summary(rows: list[Row]) -> Row:
    """Grouping-set rows (each with `dimension`, `key`, `currency` and sums) → totals and breakdowns."""
    by: dict[str, list[Row]] = {name: [] for name in DIMENSIONS}
    totals: list[Row] = []
    for row in sorted(rows, key=lambda r: (r["currency"], str(r.get("key")))):
        entry = {"currency": row["currency"], **metrics(row)}
        if row["dimension"] == "total":
            totals.append(entry)
        else:
            by[row["dimension"]].append({row["dimension"]: row["key"], **entry})
    return {"totals": totals, "by": by}


def shape_daily(cohort: list[Row], activity: list[Row]) -> list[Row]:
    """Per UTC day and currency: the cohort that first failed that day, and that day's events."""
    days: dict[tuple[str, str], Row] = {}
    for row in cohort:
        days[(_iso(row["day"]), row["currency"])] = {"cohort": metrics(row)}
    for row in activity:
        entry = days.setdefault((_iso(row["day"]), row["currency"]), {"cohort": metrics({})})
        entry["activity"] = {k: int(row.get(k) or 0) for k in ("failures", "failed_amount", "recoveries",
                                                                "recovered_amount")}  # fmt: skip
    empty = {"failures": 0, "failed_amount": 0, "recoveries": 0, "recovered_amount": 0}
    return [
        {"day": day, "currency": currency, "cohort": entry["cohort"], "activity": entry.get("activity", empty)}
        for (day, currency), entry in sorted(days.items())
    ]


# ---------------------------------------------------------------------------------------------- holdout uplift

Z95 = 1.959964


def holdout_uplift(cases: list[Row]) -> list[Row]:
    """Incremental recovered revenue of the policy over the holdout arm, per currency, with a 95 % interval.

    Each row is one case: `arm` (`holdout` when its decisions carry segment `holdout`, else `treatment`),
    `currency`, `amount_due`, `recovered_amount`. The recovery rate of an arm is recovered / at risk (a ratio
    estimator; its variance by the delta method, Σ(yᵢ − r·xᵢ)² / (Σx)²); the uplift is the difference of the
    rates, and the incremental revenue that difference times the treatment arm's revenue at risk.
    """
    sums: dict[tuple[str, str], Row] = {}
    for case in cases:
        arm = "holdout" if case.get("arm") == "holdout" else "treatment"
        x, y = int(case["amount_due"]), int(case.get("recovered_amount") or 0)
        row = sums.setdefault((str(case["currency"]), arm), {"currency": str(case["currency"]), "arm": arm, "n": 0,
                                                              "sx": 0, "sy": 0, "sxx": 0, "sxy": 0, "syy": 0})
        for key, value in (("n", 1), ("sx", x), ("sy", y), ("sxx", x * x), ("sxy", x * y), ("syy", y * y)):
            row[key] += value
    return holdout_uplift_from_sums(list(sums.values()))


def holdout_uplift_from_sums(rows: list[Row]) -> list[Row]:
    """`holdout_uplift` from per-(currency, arm) sums (`n`, `sx`, `sy`, `sxx`, `sxy`, `syy`; x = amount due,
    y = recovered), as the database aggregates them: the same figures without reading every case."""
    by_currency: dict[str, dict[str, Row]] = {}
    for row in rows:
        by_currency.setdefault(str(row["currency"]), {})[str(row["arm"])] = row
    return [_uplift_sums(currency, arms) for currency, arms in sorted(by_currency.items())]


def _arm_sums(row: Row | None) -> tuple[Row, float]:
    if not row or not row["sx"]:
        return {"cases": int(row["n"]) if row else 0, "at_risk": 0, "recovered": 0, "rate": 0.0}, 0.0
    sx, sy = float(row["sx"]), float(row["sy"])
    rate = sy / sx
    # Σ(y − r·x)² = Σy² − 2r·Σxy + r²·Σx², never below 0 (rounding)
    spread = max(0.0, float(row["syy"]) - 2 * rate * float(row["sxy"]) + rate * rate * float(row["sxx"]))
    figures = {"cases": int(row["n"]), "at_risk": round(sx), "recovered": round(sy), "rate": round(rate, 4)}
    return figures, spread / sx**2


def _uplift_sums(currency: str, arms: dict[str, Row]) -> Row:
    treated, var_t = _arm_sums(arms.get("treatment"))
    held, var_h = _arm_sums(arms.get("holdout"))
    if not held["at_risk"] or not treated["at_risk"]:
        return {"currency": currency, "treatment": treated, "holdout": held, "uplift": None, "uplift_ci95": None,
                "incremental_revenue": None, "incremental_ci95": None}
    diff = treated["recovered"] / treated["at_risk"] - held["recovered"] / held["at_risk"]
    half = Z95 * (var_t + var_h) ** 0.5
    base = treated["at_risk"]
    return {"currency": currency, "treatment": treated, "holdout": held, "uplift": round(diff, 4),
            "uplift_ci95": [round(diff - half, 4), round(diff + half, 4)],
            "incremental_revenue": round(diff * base), "incremental_ci95": [round((diff - half) * base),
                                                                          round((diff + half) * base)]}
