"""Property tests of the pure recovery core (Hypothesis RuleBasedStateMachine).

Whatever the order of provider events, timers and attempt results: the state is always a declared one,
payrisk's attempts never exceed the strategy, nothing is scheduled or charged after a non-retryable
category, a recovered or closed invoice never reopens, and replaying the log equals the state.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from actors.domain.case import empty_state, evolve
from actors.domain.decide import decide_attempt_result, decide_inbound, decide_timer
from actors.domain.decisions import Context, Decision
from actors.domain.machine import CaseState
from actors.domain.strategy_planner import StrategyPlanner
from actors.planning import classifier_for

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
INVOICES = st.sampled_from(["in_a", "in_b"])
CODES = st.sampled_from(["insufficient_funds", "do_not_honor", "lost_card", "expired_card", "fraudulent",
                         "invalid_api_key", "processing_error", "authentication_required", "generic_decline"])
# CONFIG_ERROR is held, not forbidden: the escalation's recheck may probe again once the setup is fixed.
NON_RETRYABLE = {"HARD_DECLINE", "FRAUD_FLAGGED", "AUTHENTICATION_REQUIRED"}
PLANNER = StrategyPlanner()


class RecoveryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state: dict[str, Any] = empty_state("default", "cus_p")
        self.log: list[tuple[str, dict[str, Any]]] = []
        self.now = T0
        self.timers: dict[str, dict[str, Any]] = {}
        self.n = 0
        self.last: Decision | None = None
        self.charged: set[str] = set()
        self.new_card: set[str] = set()  # invoices whose customer gave a new payment method since classification

    def ctx(self) -> Context:
        return Context(now=self.now, classify=classifier_for("default"), planner=PLANNER)

    def apply(self, decision: Decision) -> None:
        self.state = decision.state
        self.log += decision.events
        self.last = decision
        for event_type, payload in decision.events:
            if event_type == "FailureClassified":
                self.new_card.discard(payload["invoice_id"])
            if event_type == "PaymentMethodUpdated":
                self.new_card.update(self.state["cases"])
        for timer in decision.timers:
            key = timer.key.split(":", 1)[1]
            if timer.due_at is None:
                self.timers.pop(key, None)
            else:
                self.timers[key] = {**timer.payload, "due_at": timer.due_at}

    def event(self, kind: str, invoice: str, **extra: Any) -> dict[str, Any]:
        self.n += 1
        return {"kind": kind, "provider": "stripe", "provider_event_id": f"evt_{self.n}",
                "provider_event_type": {"payment_failed": "invoice.payment_failed",
                                        "payment_succeeded": "invoice.paid"}.get(kind, kind),
                "occurred_at": self.now.isoformat(), "customer_id": "cus_p", "invoice_id": invoice,
                "amount_due": 1000, "currency": "usd", "customer_email": "p@example.com", **extra}

    @rule(invoice=INVOICES, code=CODES)
    def provider_failure(self, invoice: str, code: str) -> None:
        before = self.state["cases"].get(invoice, {}).get("state")
        self.apply(decide_inbound(self.state, self.event("payment_failed", invoice,
                                                         decline={"decline_code": code}), self.ctx()))
        if before in (CaseState.RECOVERED, CaseState.CLOSED):
            assert self.state["cases"][invoice]["state"] == before

    @rule(invoice=INVOICES)
    def provider_paid(self, invoice: str) -> None:
        self.apply(decide_inbound(self.state, self.event("payment_succeeded", invoice, amount_paid=1000),
                                  self.ctx()))

    @rule(invoice=INVOICES)
    def voided(self, invoice: str) -> None:
        self.apply(decide_inbound(self.state, self.event("invoice_voided", invoice), self.ctx()))

    @rule()
    def payment_method_updated(self) -> None:
        self.apply(decide_inbound(self.state, self.event("payment_method_updated", "", payment_method_id="pm"),
                                  self.ctx()))

    @rule(hours=st.integers(min_value=1, max_value=24 * 10))
    def time_passes_and_due_timers_fire(self, hours: int) -> None:
        self.now += timedelta(hours=hours)
        for invoice, timer in sorted(self.timers.items()):
            if timer["due_at"] <= self.now:
                payload = {k: v for k, v in timer.items() if k != "due_at"}
                self.timers.pop(invoice)
                self.apply(decide_timer(self.state, invoice, payload, self.ctx()))
                self.check_charges_follow_a_retryable_category()

    @rule(invoice=INVOICES, outcome=st.sampled_from(["succeeded", "failed", "unknown"]), code=CODES)
    def attempt_result(self, invoice: str, outcome: str, code: str) -> None:
        case = self.state["cases"].get(invoice)
        if not case or not case["inflight_key"]:
            return
        attempt_no = int(case["inflight_key"].rsplit(":", 1)[1])
        self.apply(decide_attempt_result(self.state, invoice, attempt_no, outcome, {"decline_code": code},
                                         self.ctx()))

    def check_charges_follow_a_retryable_category(self) -> None:
        assert self.last is not None
        for charge in self.last.charges:
            case = self.state["cases"][charge.invoice_id]
            if charge.invoice_id not in self.new_card:
                assert case["classification"]["category"] not in NON_RETRYABLE

    @invariant()
    def every_state_is_declared(self) -> None:
        for case in self.state["cases"].values():
            assert case["state"] in {s.value for s in CaseState}

    @invariant()
    def attempts_never_exceed_the_strategy(self) -> None:
        """A charge starts only while the strategy (as decided when it starts) has attempts left. The provider's
        own later charges can lower what is left, but never make payrisk charge again."""
        if self.last is None:
            return
        for charge in self.last.charges:
            if charge.idempotency_key in self.charged:
                continue  # a reconcile re-sends the same key: not a new attempt
            self.charged.add(charge.idempotency_key)
            assert charge.attempt_no <= self.last.state["cases"][charge.invoice_id]["max_attempts"]

    @invariant()
    def nothing_is_scheduled_after_a_non_retryable_category(self) -> None:
        if self.last is None:
            return
        for event_type, payload in self.last.events:
            if event_type == "RetryScheduled" and payload["invoice_id"] not in self.new_card:
                case = self.state["cases"][payload["invoice_id"]]
                if case["classification"]["category"] == "CONFIG_ERROR":
                    continue
                assert case["classification"]["category"] not in NON_RETRYABLE

    @invariant()
    def replay_equals_state(self) -> None:
        folded = empty_state("default", "cus_p")
        for event_type, payload in self.log:
            folded = evolve(folded, event_type, payload)
        assert folded == self.state


TestRecoveryMachine = RecoveryMachine.TestCase
TestRecoveryMachine.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
