"""The recovery core planning with the shipped strategy templates and segment rules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from actors.domain.case import empty_state
from actors.domain.decide import decide_inbound
from actors.domain.decisions import Context
from actors.domain.strategy_planner import StrategyPlanner
from actors.planning import classifier_for

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CODE_FIELDS = {"invalid_api_key": {"error_type": "invalid_request_error", "error_code": "api_key_expired",
                                   "http_status": 401}}


def failure(code: str, country: str = "DE") -> dict[str, Any]:
    return {"kind": "payment_failed", "provider": "stripe", "provider_event_id": "evt_1",
            "provider_event_type": "invoice.payment_failed", "occurred_at": T0.isoformat(), "customer_id": "cus_1",
            "invoice_id": "in_1", "amount_due": 2500, "currency": "eur", "customer_email": "ada@example.com",
            "decline": {**CODE_FIELDS.get(code, {"decline_code": code}), "card_country": country,
                        "card_brand": "visa"}}


def decide(code: str) -> dict[str, Any]:
    ctx = Context(now=T0, classify=classifier_for("default"), planner=StrategyPlanner())
    case: dict[str, Any] = decide_inbound(empty_state("default", "cus_1"), failure(code), ctx).state["cases"]["in_1"]
    return case


def test_a_soft_decline_is_retried_later_with_the_segment_and_strategy_recorded() -> None:
    case = decide("insufficient_funds")
    assert case["state"] == "retry_scheduled"
    assert datetime.fromisoformat(case["next_action"]["at"]) > T0
    assert case["strategy"]["id"] and case["strategy"]["segment"] and case["strategy"]["version"] >= 1
    assert "insufficient_funds" in case["explanation"] and "segment" in case["explanation"]


@pytest.mark.parametrize(("code", "state"), [("lost_card", "awaiting_customer"), ("fraudulent", "halted"),
                                             ("invalid_api_key", "escalated")])
def test_non_retryable_categories_never_schedule_a_retry(code: str, state: str) -> None:
    case = decide(code)
    assert case["state"] == state
    assert case["next_action"]["kind"] != "retry"
