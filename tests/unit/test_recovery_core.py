"""The pure recovery core: decisions, the fold, and replay equality (no Ray, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from actors.domain.case import empty_state, evolve
from actors.domain.decide import decide_attempt_result, decide_inbound, decide_timer
from actors.domain.decisions import Context, Decision
from actors.domain.default_planner import DefaultPlanner

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CODES = {"insufficient_funds": ("SOFT_DECLINE", True), "lost_card": ("HARD_DECLINE", False),
         "fraudulent": ("FRAUD_FLAGGED", False), "invalid_api_key": ("CONFIG_ERROR", False)}


def classify(provider: str, decline: dict[str, Any]) -> dict[str, Any]:
    code = decline.get("decline_code") or decline.get("error_code") or "unknown"
    category, retryable = CODES.get(code, ("SOFT_DECLINE", True))
    return {"category": category, "reason": code, "retryable": retryable, "min_delay_seconds": 0}


def ctx(now: datetime) -> Context:
    return Context(now=now, classify=classify, planner=DefaultPlanner())


def failed(invoice: str = "in_1", code: str = "insufficient_funds", event_id: str = "evt_1",
           key: str | None = None) -> dict[str, Any]:
    return {"kind": "payment_failed", "provider": "stripe", "provider_event_id": event_id,
            "provider_event_type": "invoice.payment_failed", "occurred_at": T0.isoformat(), "customer_id": "cus_1",
            "invoice_id": invoice, "amount_due": 2500, "currency": "usd", "customer_email": "ada@example.com",
            "hosted_invoice_url": "https://pay.example/in_1", "decline": {"decline_code": code},
            "request_idempotency_key": key}


def paid(invoice: str = "in_1", key: str | None = None) -> dict[str, Any]:
    return {"kind": "payment_succeeded", "provider": "stripe", "provider_event_id": "evt_paid",
            "provider_event_type": "invoice.paid", "occurred_at": T0.isoformat(), "customer_id": "cus_1",
            "invoice_id": invoice, "amount_paid": 2500, "request_idempotency_key": key}


def replay(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    state = empty_state("default", "cus_1")
    for event_type, payload in events:
        state = evolve(state, event_type, payload)
    return state


def names(decision: Decision) -> list[str]:
    return [e for e, _ in decision.events]


def test_example_flow_retries_after_three_hours_then_emails_and_schedules_a_final_retry() -> None:
    log: list[tuple[str, dict[str, Any]]] = []
    d1 = decide_inbound(empty_state("default", "cus_1"), failed(), ctx(T0))
    log += d1.events
    assert d1.state["cases"]["in_1"]["state"] == "retry_scheduled"
    assert d1.timers[-1].due_at == T0 + timedelta(hours=3)
    assert not [o for o in d1.outbox if o.topic == "email"]

    d2 = decide_timer(d1.state, "in_1", d1.timers[-1].payload, ctx(T0 + timedelta(hours=3)))
    log += d2.events
    assert d2.state["cases"]["in_1"]["state"] == "retrying"
    assert [c.idempotency_key for c in d2.charges] == ["payrisk:default:in_1:1"]

    d3 = decide_attempt_result(d2.state, "in_1", 1, "failed", {"decline_code": "insufficient_funds"},
                               ctx(T0 + timedelta(hours=3)))
    log += d3.events
    emails = [o for o in d3.outbox if o.topic == "email"]
    assert [e.payload["template"] for e in emails] == ["payment_failed"]
    assert emails[0].payload["hosted_invoice_url"] == "https://pay.example/in_1"
    assert d3.state["cases"]["in_1"]["state"] == "retry_scheduled"
    assert d3.timers[-1].payload == {"action": "retry", "attempt_no": 2}
    assert replay(log) == d3.state


def test_hard_decline_is_never_retried() -> None:
    d = decide_inbound(empty_state("default", "cus_1"), failed(code="lost_card"), ctx(T0))
    assert d.state["cases"]["in_1"]["state"] == "awaiting_customer"
    assert not [t for t in d.timers if t.payload.get("action") == "retry"]
    assert not d.charges


def test_late_failure_after_paid_never_reopens_the_invoice() -> None:
    d1 = decide_inbound(empty_state("default", "cus_1"), failed(), ctx(T0))
    d2 = decide_inbound(d1.state, paid(), ctx(T0 + timedelta(minutes=1)))
    assert d2.state["cases"]["in_1"]["state"] == "recovered"
    d3 = decide_inbound(d2.state, failed(event_id="evt_late"), ctx(T0 + timedelta(minutes=2)))
    assert names(d3) == ["LateEventIgnored"]
    assert d3.state["cases"]["in_1"]["state"] == "recovered"


def test_webhook_about_our_own_attempt_settles_it_once() -> None:
    d1 = decide_inbound(empty_state("default", "cus_1"), failed(), ctx(T0))
    d2 = decide_timer(d1.state, "in_1", d1.timers[-1].payload, ctx(T0 + timedelta(hours=3)))
    key = d2.charges[0].idempotency_key
    d3 = decide_inbound(d2.state, paid(key=key), ctx(T0 + timedelta(hours=3)))
    assert "AttemptSucceeded" in names(d3) and d3.state["cases"]["in_1"]["state"] == "recovered"
    d4 = decide_attempt_result(d3.state, "in_1", 1, "succeeded", None, ctx(T0 + timedelta(hours=3)))
    assert d4.events == []
    assert d3.state["recoveries"] == 1


def test_decline_details_arriving_before_the_invoice_are_joined() -> None:
    charge = {"kind": "decline_details", "provider": "stripe", "provider_event_id": "evt_c",
              "provider_event_type": "charge.failed", "occurred_at": T0.isoformat(), "customer_id": "cus_1",
              "charge_id": "ch_1", "payment_intent_id": "pi_1", "decline": {"decline_code": "lost_card"}}
    pi = {**charge, "provider_event_id": "evt_p", "provider_event_type": "payment_intent.payment_failed",
          "decline": {"advice_code": "do_not_try_again"}}
    invoice = {**failed(), "decline": None, "payment_intent_id": "pi_1", "charge_id": "ch_1"}
    d1 = decide_inbound(empty_state("default", "cus_1"), charge, ctx(T0))
    d2 = decide_inbound(d1.state, pi, ctx(T0))
    d3 = decide_inbound(d2.state, invoice, ctx(T0))
    case = d3.state["cases"]["in_1"]
    assert case["classification"]["reason"] == "lost_card"
    assert case["state"] == "awaiting_customer"


def test_payment_method_update_while_awaiting_customer_triggers_a_prompt_retry() -> None:
    d1 = decide_inbound(empty_state("default", "cus_1"), failed(code="lost_card"), ctx(T0))
    pm = {"kind": "payment_method_updated", "provider": "stripe", "provider_event_id": "evt_pm",
          "provider_event_type": "customer.updated", "occurred_at": T0.isoformat(), "customer_id": "cus_1",
          "payment_method_id": "pm_new"}
    d2 = decide_inbound(d1.state, pm, ctx(T0 + timedelta(hours=1)))
    assert d2.state["cases"]["in_1"]["state"] == "retry_scheduled"
    assert d2.timers[-1].due_at == T0 + timedelta(hours=1, minutes=1)  # the default card-update delay


def test_an_open_incident_holds_retries_and_spreads_the_catch_up() -> None:
    from dataclasses import replace

    starts = []
    for invoice in ("in_1", "in_2", "in_3"):
        d1 = decide_inbound(empty_state("default", "cus_1"), failed(invoice=invoice), ctx(T0))
        due = T0 + timedelta(hours=3)
        paused = replace(ctx(due), paused_providers=frozenset({"stripe"}))
        d2 = decide_timer(d1.state, invoice, d1.timers[-1].payload, paused)
        assert names(d2) == ["RetryPaused"] and not d2.charges
        assert d2.state["cases"][invoice]["state"] == "retry_scheduled"
        resume_at = d2.timers[-1].due_at
        assert resume_at is not None and resume_at >= due + timedelta(hours=1)
        starts.append(resume_at)
        d3 = decide_timer(d2.state, invoice, d2.timers[-1].payload, ctx(resume_at))  # incident cleared
        assert [c.attempt_no for c in d3.charges] == [1]
    assert len(set(starts)) == 3  # paced: not all at the same instant


def test_observe_mode_records_what_it_would_do_and_charges_nothing() -> None:
    from dataclasses import replace

    observe = replace(ctx(T0), retry_mode="observe")
    event = {**failed(), "next_payment_attempt": "2026-03-05T09:00:00+00:00"}
    d1 = decide_inbound(empty_state("default", "cus_1"), event, observe)
    assert "ShadowDecision" in names(d1) and "RetryScheduled" not in names(d1)
    assert not [t for t in d1.timers if t.payload.get("action") == "retry"]
    shadow = dict(d1.events)["ShadowDecision"]
    assert shadow["shadow"] is True and shadow["at"] == (T0 + timedelta(hours=3)).isoformat()


def test_provider_retries_still_on_while_payrisk_owns_them_alert_engineering_once() -> None:
    event = {**failed(), "next_payment_attempt": "2026-03-05T09:00:00+00:00"}
    d1 = decide_inbound(empty_state("default", "cus_1"), event, ctx(T0))
    alerts = [o for o in d1.outbox if o.topic == "alert"]
    assert [a.idempotency_key for a in alerts] == ["alert:default:provider-retries-on:stripe"]


def test_an_unknown_code_is_recorded_and_alerts_once_per_code() -> None:
    from dataclasses import replace

    from actors.planning import classifier_for

    real = replace(ctx(T0), classify=classifier_for("default"))
    d1 = decide_inbound(empty_state("default", "cus_1"), failed(code="zz_brand_new_code"), real)
    seen = dict(d1.events)["UnknownCodeSeen"]
    assert seen["code"].endswith("zz_brand_new_code") and seen["handled_as"] == "SOFT_DECLINE"
    d2 = decide_inbound(d1.state, failed(invoice="in_2", code="zz_brand_new_code", event_id="evt_2"), real)
    keys = {o.idempotency_key for o in [*d1.outbox, *d2.outbox] if o.topic == "alert"}
    assert len([k for k in keys if "unknown-code" in k]) == 1  # same code → one outbox key → one alert
