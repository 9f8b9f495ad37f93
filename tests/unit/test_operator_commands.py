"""Operator commands in the pure core: retry now within the network budget, pause / resume, close, resend the last
email; refusals recorded with their reason; a request decided twice changes nothing; replay equals state."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from actors.domain.case import empty_state
from actors.domain.decide import decide_inbound, decide_timer
from actors.domain.decisions import Decision
from actors.domain.operator import OperatorCommand, decide_operator, outcome_of
from tests.unit.test_recovery_core import T0, ctx, failed, replay

Events = list[tuple[str, dict[str, Any]]]


def soft_failure() -> tuple[dict[str, Any], Events]:
    d = decide_inbound(empty_state("default", "cus_1"), failed(), ctx(T0))
    assert d.state["cases"]["in_1"]["state"] == "retry_scheduled"
    return d.state, list(d.events)


def command(action: str, request: str = "req-1", invoice: str = "in_1") -> OperatorCommand:
    return OperatorCommand(action, invoice, request, "user:ops")


def acted(decision: Decision) -> dict[str, Any]:
    return next(p for name, p in decision.events if name == "OperatorActed")


def test_retry_now_starts_one_attempt_at_once_and_is_recorded_first() -> None:
    state, log = soft_failure()
    now = T0 + timedelta(minutes=5)
    d = decide_operator(state, command("retry_now"), ctx(now))
    assert d is not None
    assert [name for name, _ in d.events] == ["OperatorActed", "RetryScheduled", "AttemptStarted"]
    assert acted(d)["outcome"] == "done" and acted(d)["principal"] == "user:ops"
    assert [c.idempotency_key for c in d.charges] == ["payrisk:default:in_1:1"]
    assert d.state["cases"]["in_1"]["state"] == "retrying"
    assert d.timers[-1].payload == {"action": "reconcile", "attempt_no": 1}
    assert replay(log + d.events) == d.state


def test_the_same_request_decided_twice_charges_once() -> None:
    state, _ = soft_failure()
    d = decide_operator(state, command("retry_now"), ctx(T0))
    assert d is not None
    assert decide_operator(d.state, command("retry_now"), ctx(T0)) is None
    assert outcome_of(d.state, "req-1") == "done: attempt 1 starts now"


def test_retry_now_beyond_the_card_networks_budget_is_refused_and_charges_nothing() -> None:
    state, log = soft_failure()
    case = state["cases"]["in_1"]
    case["card"] = {"card_fingerprint": "fp_1", "card_brand": "visa"}
    history = {"fp_1": [T0 - timedelta(hours=h) for h in range(1, 16)]}  # 15 in 30 days: Visa's cap
    d = decide_operator(state, command("retry_now"), replace(ctx(T0), card_history=history))
    assert d is not None and not d.charges
    assert acted(d)["outcome"] == "refused" and "budget" in acted(d)["explanation"]
    assert d.state["cases"]["in_1"]["state"] == "retry_scheduled"


def test_a_hard_decline_is_never_retried_by_an_operator() -> None:
    d0 = decide_inbound(empty_state("default", "cus_1"), failed(code="lost_card"), ctx(T0))
    d = decide_operator(d0.state, command("retry_now"), ctx(T0))
    assert d is not None and not d.charges
    assert acted(d)["outcome"] == "refused" and "not retryable" in acted(d)["explanation"]


def test_a_paused_case_ignores_its_timers_and_gets_them_back_when_resumed() -> None:
    state, log = soft_failure()
    retry_timer = next(t for t in reversed(decide_inbound(empty_state("default", "cus_1"), failed(), ctx(T0)).timers))
    paused = decide_operator(state, command("pause", "p1"), ctx(T0))
    assert paused is not None and paused.state["cases"]["in_1"]["paused"] is True
    assert [t.due_at for t in paused.timers] == [None]  # the pending retry is cancelled
    due = T0 + timedelta(hours=3)
    assert decide_timer(paused.state, "in_1", retry_timer.payload, ctx(due)).events == []
    refused = decide_operator(paused.state, command("retry_now", "r1"), ctx(due))
    assert refused is not None and acted(refused)["outcome"] == "refused"
    resumed = decide_operator(refused.state, command("resume", "p2"), ctx(T0 + timedelta(hours=5)))
    assert resumed is not None and resumed.state["cases"]["in_1"]["paused"] is False
    assert resumed.timers[-1].due_at == T0 + timedelta(hours=5)  # the missed retry is due at once
    assert resumed.timers[-1].payload == {"action": "retry", "attempt_no": 1}
    assert replay(log + paused.events + refused.events + resumed.events) == resumed.state


def test_close_stops_the_case_and_a_closed_case_refuses_every_command() -> None:
    state, log = soft_failure()
    d = decide_operator(state, command("close"), ctx(T0))
    assert d is not None
    assert d.state["cases"]["in_1"]["state"] == "closed"
    assert d.state["cases"]["in_1"]["closed_reason"] == "closed by user:ops"
    again = decide_operator(d.state, command("retry_now", "r2"), ctx(T0))
    assert again is not None and acted(again)["outcome"] == "refused" and not again.charges
    assert replay(log + d.events + again.events) == again.state


def test_resend_sends_the_last_email_again_under_a_new_key() -> None:
    state, _ = soft_failure()
    none_yet = decide_operator(state, command("resend_email", "e0"), ctx(T0))
    assert none_yet is not None and acted(none_yet)["outcome"] == "refused"
    state["cases"]["in_1"]["emails"] = ["payment_failed"]
    d = decide_operator(state, command("resend_email", "e1"), ctx(T0))
    assert d is not None
    [email] = d.outbox
    assert email.payload["template"] == "payment_failed" and email.payload["to"] == "ada@example.com"
    assert email.idempotency_key.endswith(":resend:e1")


def test_an_unknown_invoice_is_refused_and_opens_no_case() -> None:
    state, _ = soft_failure()
    d = decide_operator(state, command("pause", invoice="in_nope"), ctx(T0))
    assert d is not None and acted(d)["outcome"] == "refused"
    assert set(d.state["cases"]) == {"in_1"}


def test_an_operator_pause_is_kept_at_its_time() -> None:
    state, _ = soft_failure()
    later = T0 + timedelta(days=1)
    d = decide_operator(state, command("pause"), ctx(later))
    assert d is not None and datetime.fromisoformat(acted(d)["at"]) == later
