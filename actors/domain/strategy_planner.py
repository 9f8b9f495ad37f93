"""The planner backed by the strategy templates and segment rules in `strategies/` (pure).

Counting differs at the seam: `strategies` counts every charge of the invoice (the provider's original attempt
included) while the recovery machine counts payrisk's own retry attempts (its idempotency keys). This adapter
converts one into the other and records the segment, strategy id and version on the plan. The classification's
`max_attempts_cap` (an unknown code's small cap, or a row's own) counts like `strategies` and lowers the strategy's
`max_attempts`; the explanation states the capped number.

A stable random share of each tenant's invoices is the holdout arm (`strategies/holdout.py`): planned with the
baseline strategy, recorded as segment `holdout` and `arm: holdout` on every decision. Learned schedules get the
timing model (fitted from the tenant's ledger by the caller; the prior alone by default) and the customer's pay
days: the local days of the month of their earlier recoveries.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from actors.domain.decisions import Json, Plan
from strategies.calendar import default_countries
from strategies.holdout import HOLDOUT_SEGMENT, Holdouts, default_holdouts
from strategies.learned import TimingModel
from strategies.loader import StrategyBook, default_book, default_segments
from strategies.network import NetworkLimits
from strategies.planner import RetryPlan, plan_next
from strategies.segments import CustomerProfile, SegmentRules, select_segment

_NO_CAP = 10_000


class StrategyPlanner:
    def __init__(self, limits: NetworkLimits | None = None, *, timing: TimingModel | None = None,
                 holdouts: Holdouts | None = None, book: StrategyBook | None = None,
                 segments: SegmentRules | None = None) -> None:
        self._book = book or default_book()
        self._segments = segments or default_segments()
        self._limits = limits or NetworkLimits()
        self._timing = timing
        self._holdouts = holdouts if holdouts is not None else default_holdouts()

    def plan(self, *, customer: Json, case: Json, classification: Json, now: datetime,
             card_history: Sequence[datetime]) -> Plan:
        profile = profile_of(customer, case, now=now)
        held_out = self._holdouts.is_held_out(str(customer["tenant_id"]), str(case["invoice_id"]))
        if held_out:
            strategy_id, segment = self._holdouts.strategy, HOLDOUT_SEGMENT
        else:
            choice = select_segment(self._segments, profile)
            strategy_id, segment = choice.strategy_id, choice.segment
        strategy = self._book.get(strategy_id)
        provider_charges = max(1, int(case.get("provider_failures") or 1))
        first = datetime.fromisoformat(case["first_failed_at"]) if case.get("first_failed_at") else now
        raw = classification.get("raw_codes") or {}
        plan = plan_next(
            strategy, category=str(classification.get("category")), reason=str(classification.get("reason")),
            attempts_made=provider_charges + int(case["attempts_made"]), first_failed_at=first, now=now,
            profile=profile, card_history=[*card_history, now], brand=case["card"].get("card_brand"),
            visa_category=_visa_category(classification),
            mc_advice_code=(classification.get("network_rule") or {}).get("mastercard_advice")
            or raw.get("network_advice_code"),
            min_delay_seconds=int(classification.get("min_delay_seconds") or 0),
            seed=zlib.crc32(f"{case['invoice_id']}:{case['attempts_made']}".encode()), limits=self._limits,
            segment=segment, max_attempts_cap=_cap(classification), timing=self._timing,
            funding=case["card"].get("card_funding"), pay_days=pay_days(customer, profile))
        return _to_plan(plan, provider_charges, "holdout" if held_out else "treatment")


def pay_days(customer: Json, profile: CustomerProfile) -> tuple[int, ...]:
    """Local days of the month on which the customer's earlier failed invoices were recovered."""
    zone = ZoneInfo(profile.timezone) if profile.timezone else default_countries().of(profile.country).zone()
    days = {datetime.fromisoformat(c["recovered_at"]).astimezone(zone).day
            for c in customer.get("cases", {}).values() if c.get("recovered_at")}
    return tuple(sorted(days))


def _to_plan(plan: RetryPlan, provider_charges: int, arm: str) -> Plan:
    max_attempts = plan.max_attempts - provider_charges if plan.max_attempts is not None else _NO_CAP
    return Plan(action=plan.action, at=plan.at, attempt_no=plan.attempt_no - provider_charges,
                max_attempts=max(0, max_attempts), explanation=plan.explanation,
                strategy={"id": plan.strategy_id, "version": plan.strategy_version, "segment": plan.segment,
                          "final_action": plan.final_action, "arm": arm},
                email_template=plan.email_template, final_action=plan.final_action, alert=plan.alert)


def profile_of(customer: Json, case: Json, *, now: datetime) -> CustomerProfile:
    """What the event store knows of the customer at `now` (the profile API can add more later)."""
    last = customer.get("last_failure_at")
    first = customer.get("first_failure_at")
    days = None
    if last and first and last != first:
        days = max(0, (datetime.fromisoformat(last) - datetime.fromisoformat(first)).days)
    known = {
        "customer_id": customer["customer_id"], "country": case["card"].get("card_country"),
        "currency": case.get("currency") or "usd", "invoice_amount": max(0, int(case.get("amount_due") or 0)),
        "mrr": max(0, int(case.get("amount_due") or 0)), "past_failures": max(0, int(customer.get("failures", 1)) - 1),
        "past_recoveries": int(customer.get("recoveries", 0)), "days_since_last_failure": days,
        "email": customer.get("email"), "tenure_days": tenure_days(customer.get("customer_since"), now),
    }
    # what the business told us (PUT /api/customers/{id}/profile) wins over what the events suggest
    given = {k: v for k, v in (customer.get("profile") or {}).items() if v is not None}
    return CustomerProfile.model_validate({**known, **given})


def tenure_days(customer_since: str | None, now: datetime) -> int | None:
    """Whole days since `customer_since` (ISO-8601, UTC when it names no zone), at least 0; None when unknown."""
    if not customer_since:
        return None
    since = datetime.fromisoformat(customer_since)
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return max(0, (now - since).days)


def _cap(classification: Json) -> int | None:
    """The classification's attempt cap (every charge, the provider's original included), if it has one."""
    cap = classification.get("max_attempts_cap")
    return max(1, int(cap)) if cap is not None else None


def _visa_category(classification: Json) -> int | None:
    rule: Any = classification.get("network_rule") or {}
    if isinstance(rule, dict):
        for key in ("visa_category", "category"):
            value = rule.get(key)
            if isinstance(value, int):
                return value
    return None
