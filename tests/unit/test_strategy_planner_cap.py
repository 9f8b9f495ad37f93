"""The classification's `max_attempts_cap` (every charge of the invoice, the provider's original included) holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from actors.domain.case import empty_state
from actors.domain.decide import decide_attempt_result, decide_inbound, decide_timer
from actors.domain.decisions import Context, Decision
from actors.domain.strategy_planner import StrategyPlanner
from actors.planning import classifier_for
from strategies.loader import StrategyBook, default_book
from strategies.network import NetworkLimits
from strategies.planner import plan_next
from strategies.segments import CustomerProfile

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
UNKNOWN = {"decline_code": "zz_brand_new_code"}


def ctx(now: datetime) -> Context:
    return Context(now=now, classify=classifier_for("default"), planner=StrategyPlanner())


def failure(decline: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "payment_failed", "provider": "stripe", "provider_event_id": "evt_1",
            "provider_event_type": "invoice.payment_failed", "occurred_at": T0.isoformat(), "customer_id": "cus_1",
            "invoice_id": "in_1", "amount_due": 5000, "currency": "usd", "customer_email": "ada@example.com",
            "decline": {**decline, "card_country": "US", "card_brand": "visa"}}


def run_until_final(decline: dict[str, Any]) -> tuple[list[Decision], int]:
    """Fail, then fail every retry the same way; returns the decisions and the number of charges we made."""
    decision = decide_inbound(empty_state("default", "cus_1"), failure(decline), ctx(T0))
    decisions, charges = [decision], 0
    for _ in range(20):
        case = decision.state["cases"]["in_1"]
        if case["state"] != "retry_scheduled":
            break
        timer = decision.timers[-1]
        assert timer.due_at is not None
        decision = decide_timer(decision.state, "in_1", timer.payload, ctx(timer.due_at))
        decisions.append(decision)
        charges += len(decision.charges)
        attempt_no = decision.state["cases"]["in_1"]["next_action"]["attempt_no"]
        decision = decide_attempt_result(decision.state, "in_1", attempt_no, "failed", decline,
                                         ctx(timer.due_at + timedelta(seconds=5)))
        decisions.append(decision)
    return decisions, charges


def test_an_unknown_code_capped_at_two_gets_one_retry_and_says_so() -> None:
    first = decide_inbound(empty_state("default", "cus_1"), failure(UNKNOWN), ctx(T0))
    case = first.state["cases"]["in_1"]
    assert case["classification"]["unknown"] and case["classification"]["max_attempts_cap"] == 2
    assert case["state"] == "retry_scheduled"
    assert case["explanation"].startswith("attempt 2 of 2 "), case["explanation"]
    assert case["max_attempts"] == 1  # the machine counts our own retries: 2 charges - the provider's 1
    decisions, charges = run_until_final(UNKNOWN)
    final = decisions[-1].state["cases"]["in_1"]
    assert charges == 1 and final["state"] == "exhausted"
    assert "2 of 2" in final["explanation"], final["explanation"]


def test_a_known_code_with_a_cap_below_the_strategy_is_honoured_too() -> None:
    # Stripe `do_not_honor` and friends carry no cap; use a classification with one through the planner.
    # The v3 templates let the expected-value rule replace a known reason's cap (test_value_caps_attempts.py);
    # strategies that do not opt in (v2 here) honour it.
    planner = StrategyPlanner(book=StrategyBook(strategies=tuple(s for s in default_book().strategies
                                                                 if s.version <= 2)))
    state = {**empty_state("default", "cus_1"), "failures": 1}
    case = {"invoice_id": "in_1", "amount_due": 5000, "currency": "usd", "attempts_made": 0, "provider_failures": 1,
            "first_failed_at": T0.isoformat(), "card": {"card_country": "US", "card_brand": "visa"}}
    classification = {"category": "SOFT_DECLINE", "reason": "generic_decline", "retryable": True, "raw_codes": {},
                      "max_attempts_cap": 3, "unknown": False}
    plan = planner.plan(customer=state, case=case, classification=classification, now=T0, card_history=[])
    assert (plan.action, plan.attempt_no, plan.max_attempts) == ("retry", 1, 2)
    assert plan.explanation.startswith("attempt 2 of 3 ") and "capped at 3" in plan.explanation
    later = planner.plan(customer=state, case={**case, "attempts_made": 2}, classification=classification,
                         now=T0 + timedelta(days=3), card_history=[])
    assert later.action == "final" and "attempts used up (3 of 3)" in later.explanation


def test_a_cap_above_the_strategy_changes_nothing() -> None:
    planner = StrategyPlanner()
    state = {**empty_state("default", "cus_1"), "failures": 1}
    case = {"invoice_id": "in_1", "amount_due": 5000, "currency": "usd", "attempts_made": 0, "provider_failures": 1,
            "first_failed_at": T0.isoformat(), "card": {"card_country": "US", "card_brand": "visa"}}
    classification = {"category": "SOFT_DECLINE", "reason": "generic_decline", "retryable": True, "raw_codes": {}}
    uncapped = planner.plan(customer=state, case=case, classification=classification, now=T0, card_history=[])
    high = planner.plan(customer=state, case=case, classification={**classification, "max_attempts_cap": 12},
                        now=T0, card_history=[])
    assert uncapped == high and "capped" not in high.explanation


def test_provider_retries_count_against_the_cap() -> None:
    planner = StrategyPlanner()
    state = {**empty_state("default", "cus_1"), "failures": 1}
    case = {"invoice_id": "in_1", "amount_due": 5000, "currency": "usd", "attempts_made": 0, "provider_failures": 2,
            "first_failed_at": T0.isoformat(), "card": {"card_country": "US", "card_brand": "visa"}}
    classification = {"category": "SOFT_DECLINE", "reason": "unknown_code", "retryable": True, "raw_codes": {},
                      "max_attempts_cap": 2, "unknown": True}
    plan = planner.plan(customer=state, case=case, classification=classification, now=T0, card_history=[])
    assert plan.action == "final" and plan.max_attempts == 0 and "(2 of 2)" in plan.explanation


@pytest.mark.parametrize(("cap", "made", "action", "head"), [
    (2, 1, "retry", "attempt 2 of 2 "), (2, 2, "final", "final after 2 failed attempts"),
    (3, 2, "retry", "attempt 3 of 3 "), (None, 2, "retry", "attempt 3 of 5 "), (9, 2, "retry", "attempt 3 of 5 "),
])
def test_plan_next_caps_the_strategy_attempts(cap: int | None, made: int, action: str, head: str) -> None:
    plan = plan_next(default_book().get("standard", 2), category="SOFT_DECLINE", reason="generic_decline",
                     attempts_made=made, first_failed_at=T0, now=T0 + timedelta(hours=made),
                     profile=CustomerProfile(customer_id="c", country="US", past_failures=1),
                     card_history=[T0], brand="visa", visa_category=None, mc_advice_code=None, min_delay_seconds=0,
                     seed=1, limits=NetworkLimits(), segment="default", max_attempts_cap=cap)
    assert plan.action == action and plan.explanation.startswith(head), plan.explanation
    assert plan.max_attempts == (min(cap, 5) if cap else 5)


@pytest.mark.parametrize(("cap", "provider", "retries"), [(None, 1, 2), (2, 1, 1), (3, 1, 2), (2, 2, 0), (9, 1, 2)])
def test_the_fixed_fallback_planner_counts_the_cap_the_same_way(cap: int | None, provider: int, retries: int) -> None:
    from actors.domain.default_planner import DefaultPlanner

    case = {"invoice_id": "in_1", "attempts_made": 0, "provider_failures": provider, "card": {}}
    classification = {"category": "SOFT_DECLINE", "reason": "unknown_code", "max_attempts_cap": cap}
    plan = DefaultPlanner().plan(customer={}, case=case, classification=classification, now=T0, card_history=[])
    assert plan.max_attempts == retries  # the machine's count: our own retries
    assert plan.action == ("retry" if retries else "final")
