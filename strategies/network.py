"""Card-network retry budget: Visa categories, Mastercard advice codes, rolling 30-day and 24-hour caps.

Facts from reference/networks.md: Visa category 1 is never retried and categories 2–4 share a budget of
15 reattempts per card per 30 days (20 in some regions from 2025, hence configurable); Mastercard allows
35 declines per 30 days and about 10 per 24 hours, stops on advice 03/21 and sets minimum waits with 24–30.
``history`` is every attempt already made on the card (including the PSP's own retries) since its last
approval; counting the original attempt too keeps us one on the safe side.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

_BRANDS = {"visa": "visa", "mastercard": "mastercard", "mc": "mastercard", "master card": "mastercard"}
_LABELS = {"visa": "Visa", "mastercard": "Mastercard", "other": "card"}
_STOP_MEANING = {"03": "do not try again", "21": "payment cancelled by the cardholder"}


class NetworkLimits(BaseModel):
    """The caps we enforce per card; defaults are the safe published values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    visa_per_30d: int = Field(default=15, ge=1)
    mastercard_per_30d: int = Field(default=35, ge=1)
    other_per_30d: int | None = Field(
        default=15, ge=1
    )  # Amex, Discover, ...: no published rule, same counters
    per_day: int = Field(default=10, ge=1)  # Mastercard TPE: more than 10 declines in 24 h is fined
    window_days: int = Field(default=30, ge=1)
    mc_stop_codes: frozenset[str] = frozenset({"03", "21"})
    mc_wait_hours: dict[str, float] = {"24": 1, "25": 24, "26": 48, "27": 96, "28": 144, "29": 192, "30": 240}


class BudgetVerdict(BaseModel):
    """May the card be charged at ``at``? When not, why, and the earliest time it may (None: never)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed: bool
    earliest_at: datetime | None
    used: int
    limit: int | None
    reason: str


def network_of(brand: str | None) -> str:
    """``visa``, ``mastercard`` or ``other`` for any provider's spelling of the brand."""
    return _BRANDS.get((brand or "").strip().lower(), "other")


def budget_label(brand: str | None) -> str:
    return _LABELS[network_of(brand)]


def permanent_stop(
    visa_category: int | None, mc_advice_code: str | None, limits: NetworkLimits
) -> str | None:
    """Why this credential must never be charged again, or None."""
    if visa_category == 1:
        return "Visa category 1 (issuer will never approve): never retry this card"
    if mc_advice_code in limits.mc_stop_codes:
        meaning = _STOP_MEANING.get(mc_advice_code or "", "stop")
        return f"Mastercard advice {mc_advice_code} ({meaning}): never retry this card"
    return None


def needs_new_details(visa_category: int | None, mc_advice_code: str | None) -> str | None:
    """Why a retry with the same details would only burn budget (the customer must update them), or None."""
    if visa_category == 3:
        return "Visa category 3: the card data must be corrected before a retry"
    if mc_advice_code == "01":
        return "Mastercard advice 01: new account information is available"
    return None


def check_network_budget(
    history: Sequence[datetime],
    brand: str | None,
    visa_category: int | None,
    mc_advice_code: str | None,
    at: datetime,
    limits: NetworkLimits,
) -> BudgetVerdict:
    """Judge one charge of the card at ``at`` against every network rule; the first rule broken wins."""
    network = network_of(brand)
    limit = _limit_30d(network, limits)
    past = sorted(t for t in history if t <= at)
    month = [t for t in past if t > at - timedelta(days=limits.window_days)]
    stop = permanent_stop(visa_category, mc_advice_code, limits)
    if stop is not None:
        return BudgetVerdict(allowed=False, earliest_at=None, used=len(month), limit=limit, reason=stop)
    for blocked in (
        _advice_wait(past, mc_advice_code, at, limits),
        _rolling_cap(month, limit, _LABELS[network], limits),
    ):
        if blocked is not None:
            earliest, reason = blocked
            return BudgetVerdict(
                allowed=False, earliest_at=earliest, used=len(month), limit=limit, reason=reason
            )
    day = _rolling_day(past, at, limits)
    if day is not None:
        return BudgetVerdict(allowed=False, earliest_at=day[0], used=len(month), limit=limit, reason=day[1])
    left = "unlimited" if limit is None else f"{limit - len(month)}/{limit} left"
    return BudgetVerdict(
        allowed=True,
        earliest_at=None,
        used=len(month),
        limit=limit,
        reason=f"{_LABELS[network]} budget {left}",
    )


def _limit_30d(network: str, limits: NetworkLimits) -> int | None:
    if network == "visa":
        return limits.visa_per_30d
    if network == "mastercard":
        return limits.mastercard_per_30d
    return limits.other_per_30d


def _advice_wait(
    past: list[datetime], code: str | None, at: datetime, limits: NetworkLimits
) -> tuple[datetime, str] | None:
    """Mastercard advice 24–30: a minimum wait after the declined attempt that carried the code."""
    hours = limits.mc_wait_hours.get(code or "")
    if hours is None or not past:
        return None
    earliest = past[-1] + timedelta(hours=hours)
    if at >= earliest:
        return None
    return earliest, f"Mastercard advice {code}: wait {hours:g} h after the last attempt"


def _rolling_cap(
    month: list[datetime], limit: int | None, label: str, limits: NetworkLimits
) -> tuple[datetime, str] | None:
    """The rolling-window cap: when full, the earliest time enough old attempts have aged out."""
    if limit is None or len(month) < limit:
        return None
    earliest = month[len(month) - limit] + timedelta(days=limits.window_days)
    return earliest, f"{label} budget used up: {len(month)}/{limit} attempts in {limits.window_days} days"


def _rolling_day(past: list[datetime], at: datetime, limits: NetworkLimits) -> tuple[datetime, str] | None:
    day = [t for t in past if t > at - timedelta(days=1)]
    if len(day) < limits.per_day:
        return None
    earliest = day[len(day) - limits.per_day] + timedelta(days=1)
    return earliest, f"per-day cap reached: {len(day)}/{limits.per_day} attempts in 24 h"
