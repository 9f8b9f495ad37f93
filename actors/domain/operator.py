"""Operator commands on one invoice case (pure): retry now, pause / resume dunning, close, resend the last email.

Each command is decided like any other event of the customer: it records `OperatorActed` (who asked, what, the
outcome and why) and, when it is carried out, the events the machine needs. A command the case cannot take is
recorded as refused with the reason, never half done. Every command carries a request id: the same request
decided twice (Ray may retry a method) changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from actors.domain.case import Json
from actors.domain.decide import _Run, _start_attempt, _timezone, iso
from actors.domain.decisions import Context, Decision
from actors.domain.events import InvoiceClosed, OperatorActed, RetryScheduled
from actors.domain.machine import TERMINAL, CaseModel, CaseState, may
from actors.domain.strategy_planner import _visa_category
from strategies.network import NetworkLimits, check_network_budget

ACTIONS = ("retry_now", "pause", "resume", "close", "resend_email")
#: the timer a resumed case gets back, by the kind of its next action
_RESUME_TIMERS = {"retry": "retry", "await_customer": "deadline", "observe": "deadline", "escalate": "recheck",
                  "classify": "classify"}


@dataclass(frozen=True, slots=True)
class OperatorCommand:
    action: str  # one of ACTIONS
    invoice_id: str
    request_id: str  # idempotency: one request is decided once
    principal: str  # who asked (`user:…` / `key:…`), as the audit trail names them


class Refused(Exception):
    """The case cannot take this command now; the message says why (shown to the operator, recorded)."""


def decide_operator(state: Json, command: OperatorCommand, ctx: Context) -> Decision | None:
    """Decide one operator command; None when this request was decided before.

    The command is checked against the case as it is, recorded (`OperatorActed`, first in the trail), then
    carried out: the events it causes follow it, so replay folds them in the order they were decided.
    """
    if command.request_id in (state.get("operator_requests") or {}):
        return None
    run = _Run(state, ctx)
    case = run.case(command.invoice_id)
    handler = _HANDLERS.get(command.action)
    try:
        if case is None:
            raise Refused(f"the customer has no case for invoice {command.invoice_id}")
        if handler is None:
            raise Refused(f"unknown action {command.action!r}; one of {', '.join(ACTIONS)}")
        explanation = handler[0](run, case, command)
    except Refused as refused:
        run.emit(_acted(run, command, "refused", str(refused)))
        return run.d
    assert case is not None and handler is not None
    run.emit(_acted(run, command, "done", explanation))
    acted = run.case(command.invoice_id)
    assert acted is not None
    handler[1](run, acted, command)
    return run.d


def outcome_of(state: Json, request_id: str) -> str | None:
    """`done: …` / `refused: …` for a request already decided (None: never seen)."""
    found = (state.get("operator_requests") or {}).get(request_id)
    return str(found) if found is not None else None


def _acted(run: _Run, command: OperatorCommand, outcome: str, explanation: str) -> OperatorActed:
    return OperatorActed(invoice_id=command.invoice_id, action=command.action, request_id=command.request_id,
                         principal=command.principal, outcome=outcome, explanation=explanation, at=iso(run.ctx.now))


def _open(case: Json, *, in_flight_ok: bool = False) -> None:
    if case["state"] in TERMINAL:
        raise Refused(f"the case is {case['state']}: nothing is left to do")
    if case["state"] == CaseState.HEALTHY:
        raise Refused("the invoice has not failed")
    if not in_flight_ok and case["state"] == CaseState.RETRYING:
        raise Refused("a charge is in flight; wait for its answer")


def _check_retry(run: _Run, case: Json, command: OperatorCommand) -> str:
    """One attempt now, counted against the card network's budget like any retry (never beyond it)."""
    _open(case)
    if case.get("paused"):
        raise Refused("dunning is paused for this case; resume it first")
    if run.ctx.retry_mode == "observe":
        raise Refused("the tenant is in observe mode: payrisk charges nothing")
    if not case.get("retryable") or case["state"] == CaseState.CLASSIFYING:
        reason = (case.get("classification") or {}).get("reason", "not classified yet")
        raise Refused(f"this failure is not retryable ({reason}): a retry would not succeed or is forbidden")
    _within_budget(run, case)
    if not may(CaseModel(case["state"], True, case["attempts_made"], _max_attempts(case)), "schedule_retry"):
        raise Refused(f"a retry cannot be scheduled from {case['state']}")
    return f"attempt {case['attempts_made'] + 1} starts now"


def _retry(run: _Run, case: Json, command: OperatorCommand) -> None:
    attempt_no = case["attempts_made"] + 1
    run.emit(RetryScheduled(invoice_id=case["invoice_id"], action="retry", at=iso(run.ctx.now),
                            attempt_no=attempt_no, max_attempts=_max_attempts(case),
                            explanation=f"retry now, asked by {command.principal}", strategy=case["strategy"],
                            retryable=True, resume_reason="operator"))
    scheduled = run.case(case["invoice_id"])
    assert scheduled is not None
    _start_attempt(run, scheduled, attempt_no)


def _max_attempts(case: Json) -> int:
    """An operator may ask for one attempt past the strategy's count; the network budget still decides."""
    return max(int(case["max_attempts"]), int(case["attempts_made"]) + 1)


def _within_budget(run: _Run, case: Json) -> None:
    classification = case.get("classification") or {}
    advice = (classification.get("network_rule") or {}).get("mastercard_advice") or (
        classification.get("raw_codes") or {}).get("network_advice_code")
    history = run.ctx.card_history.get(case["card"].get("card_fingerprint", ""), ())
    verdict = check_network_budget([*history], case["card"].get("card_brand"), _visa_category(classification),
                                   advice, run.ctx.now, NetworkLimits())
    if not verdict.allowed:
        when = f"; allowed from {verdict.earliest_at:%Y-%m-%d %H:%M} UTC" if verdict.earliest_at else ""
        raise Refused(f"the card network's retry budget forbids a charge now: {verdict.reason}{when}")


def _check_pause(run: _Run, case: Json, command: OperatorCommand) -> str:
    _open(case)
    if case.get("paused"):
        raise Refused("dunning is already paused for this case")
    return "dunning paused: no retry, email or deadline until resumed"


def _pause(run: _Run, case: Json, command: OperatorCommand) -> None:
    run.timer(case["invoice_id"], None)


def _check_resume(run: _Run, case: Json, command: OperatorCommand) -> str:
    _open(case)
    if not case.get("paused"):
        raise Refused("dunning is not paused for this case")
    timer = _resumed_timer(run, case)
    return f"dunning resumed: {timer[0]} at {iso(timer[1])}" if timer else "dunning resumed"


def _resume(run: _Run, case: Json, command: OperatorCommand) -> None:
    timer = _resumed_timer(run, case)
    if timer is not None:
        action, due, extra = timer
        run.timer(case["invoice_id"], due, action=action, **extra)


def _resumed_timer(run: _Run, case: Json) -> tuple[str, datetime, Json] | None:
    """The timer the case had before it was paused, due now at the earliest."""
    nxt = case.get("next_action") or {}
    action = _RESUME_TIMERS.get(str(nxt.get("kind")))
    if action is None:
        return None
    due = max(run.ctx.now, _at(nxt.get("at")) or run.ctx.now)
    return action, due, {"attempt_no": nxt["attempt_no"]} if nxt.get("attempt_no") is not None else {}


def _check_close(run: _Run, case: Json, command: OperatorCommand) -> str:
    _open(case)
    return "case closed: no more retries or emails (the invoice itself stays as it is at the provider)"


def _close(run: _Run, case: Json, command: OperatorCommand) -> None:
    run.emit(InvoiceClosed(invoice_id=case["invoice_id"], reason=f"closed by {command.principal}",
                           at=iso(run.ctx.now)))
    run.timer(case["invoice_id"], None)


def _check_resend(run: _Run, case: Json, command: OperatorCommand) -> str:
    _open(case, in_flight_ok=True)
    if not case.get("emails"):
        raise Refused("no email was sent for this case")
    if not run.state.get("email"):
        raise Refused("no email address is known for this customer")
    return f"email {case['emails'][-1]!r} sent again"


def _resend(run: _Run, case: Json, command: OperatorCommand) -> None:
    """A new outbox row (its key names this request), so the notifier sends it although it sent the first."""
    template, tenant = case["emails"][-1], run.state["tenant_id"]
    nxt = case.get("next_action") or {}
    run.notify("email", f"email:{tenant}:{case['invoice_id']}:{template}:resend:{command.request_id}", {
        "template": template, "to": run.state["email"], "customer_id": run.state["customer_id"],
        "invoice_id": case["invoice_id"], "amount_due": case["amount_due"], "currency": case["currency"] or "usd",
        "hosted_invoice_url": case["hosted_invoice_url"],
        "next_attempt_at": nxt.get("at") if nxt.get("kind") == "retry" else None,
        "timezone": _timezone(run.state, case), "branding": run.ctx.branding}, case["invoice_id"])


def _at(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


_Check = Callable[[_Run, Json, OperatorCommand], str]
_Act = Callable[[_Run, Json, OperatorCommand], None]
_HANDLERS: dict[str, tuple[_Check, _Act]] = {
    "retry_now": (_check_retry, _retry), "pause": (_check_pause, _pause), "resume": (_check_resume, _resume),
    "close": (_check_close, _close), "resend_email": (_check_resend, _resend),
}
