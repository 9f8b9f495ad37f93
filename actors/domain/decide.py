"""Pure decisions: (state, command, context) → events + timers + outbox rows + provider calls.

Every state change goes through `evolve`, so what is decided is exactly what replay reproduces. The clock,
the classifier and the planner come in through the context; nothing here does I/O.
"""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta
from typing import Any

from actors.domain.case import Json, evolve
from actors.domain.decisions import ChargeRequest, Context, Decision, OutboxCmd, Plan, TimerCmd, attempt_key
from actors.domain.machine import TERMINAL, CaseModel, CaseState, may


class _Run:
    """One decision in progress: emits events (folding them into state) and collects effects."""

    def __init__(self, state: Json, ctx: Context) -> None:
        self.ctx = ctx
        self.d = Decision(state=state)

    @property
    def state(self) -> Json:
        return self.d.state

    def emit(self, event_type: str, payload: Json) -> None:
        self.d.state = evolve(self.d.state, event_type, payload)
        self.d.events.append((event_type, payload))

    def case(self, invoice_id: str) -> Json | None:
        case: Json | None = self.state["cases"].get(invoice_id)
        return case

    def timer(self, invoice_id: str, due_at: datetime | None, **payload: Any) -> None:
        self.d.timers.append(TimerCmd(f"invoice:{invoice_id}", due_at, payload))

    def notify(self, topic: str, key: str, payload: Json, invoice_id: str) -> None:
        self.d.outbox.append(OutboxCmd(topic, key, payload))
        self.emit("NotificationRequested", {"invoice_id": invoice_id, "topic": topic,
                                            "idempotency_key": key, "template": payload.get("template"),
                                            "kind": payload.get("kind")})


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _model(case: Json) -> CaseModel:
    return CaseModel(case["state"], case["retryable"], case["attempts_made"], case["max_attempts"])


# ---------------------------------------------------------------------------------------------- inbound events

def decide_inbound(state: Json, event: Json, ctx: Context, delivery_id: int | None = None) -> Decision:
    """Apply one normalized provider event (an InboundEvent as JSON)."""
    run = _Run(state, ctx)
    handler = _INBOUND.get(event["kind"])
    if handler is not None:
        handler(run, event, delivery_id)
    return run.d


def _on_payment_failed(run: _Run, e: Json, delivery_id: int | None) -> None:
    invoice_id = e.get("invoice_id")
    if not invoice_id:
        return
    case = run.case(invoice_id)
    if case is not None and _is_our_attempt(case, e):
        _our_attempt_reported(run, case, e, succeeded=False)
        return
    if case is not None and not may(_model(case), "fail"):
        run.emit("LateEventIgnored", {"invoice_id": invoice_id, "event": e["provider_event_type"],
                                      "reason": _ignored_because(case["state"])})
        return
    run.emit("PaymentFailed", {
        "invoice_id": invoice_id, "at": iso(run.ctx.now), "occurred_at": e["occurred_at"],
        "amount_due": e.get("amount_due"), "currency": e.get("currency"),
        "subscription_id": e.get("subscription_id"), "hosted_invoice_url": e.get("hosted_invoice_url"),
        "payment_intent_id": e.get("payment_intent_id"), "charge_id": e.get("charge_id"),
        "provider_attempt_count": e.get("attempt_count"), "customer_email": e.get("customer_email"),
        "next_payment_attempt": e.get("next_payment_attempt"), "delivery_id": delivery_id,
        "classify_at": iso(run.ctx.now + run.ctx.classify_wait)})
    if e.get("next_payment_attempt") and run.ctx.retry_mode == "own":
        _provider_retries_on(run, invoice_id)
    if e.get("decline"):
        _record_decline(run, "invoice", invoice_id, e["decline"])
    if _details_complete(run, invoice_id):
        _classify_and_plan(run, invoice_id)
    else:
        run.timer(invoice_id, run.ctx.now + run.ctx.classify_wait, action="classify")


def _provider_retries_on(run: _Run, invoice_id: str) -> None:
    """The provider still schedules its own retries while payrisk owns them: both count against the card
    networks' limits. One alert per tenant and provider tells engineering to turn the provider's off."""
    tenant = run.state["tenant_id"]
    run.notify("alert", f"alert:{tenant}:provider-retries-on:{run.ctx.provider}", {
        "kind": "engineering", "title": f"{run.ctx.provider} automatic retries are still on",
        "text": "payrisk owns retries for this tenant (retry_mode=own) but the provider set next_payment_attempt. "
                "Turn the provider's automatic retries off (docs/OPERATIONS) or set retry_mode=observe.",
        "severity": "warning", "fields": {"tenant": tenant, "provider": run.ctx.provider}}, invoice_id)


def _ignored_because(state: str) -> str:
    if state == CaseState.RETRYING:
        return "a charge of ours is in flight; its result decides what happens next"
    return f"case is {state}; a late failure never reopens it"


def _on_decline_details(run: _Run, e: Json, delivery_id: int | None) -> None:
    source = "charge" if e["provider_event_type"].startswith("charge.") else "payment_intent"
    link = e.get("charge_id") if source == "charge" else e.get("payment_intent_id")
    if not e.get("decline") or not (link or e.get("invoice_id")):
        return
    record = {"source": source, "invoice_id": e.get("invoice_id"), "payment_intent_id": e.get("payment_intent_id"),
              "charge_id": e.get("charge_id"), "decline": e["decline"], "delivery_id": delivery_id}
    run.emit("DeclineDetailsReceived", {"link": f"{source}:{link or e.get('invoice_id')}", **record})
    for case in list(run.state["cases"].values()):
        if case["state"] == CaseState.CLASSIFYING and _details_complete(run, case["invoice_id"]):
            _classify_and_plan(run, case["invoice_id"])


def _on_action_required(run: _Run, e: Json, delivery_id: int | None) -> None:
    decline = dict(e.get("decline") or {})
    decline.setdefault("decline_code", "authentication_required")
    _on_payment_failed(run, {**e, "decline": decline}, delivery_id)


def _on_payment_succeeded(run: _Run, e: Json, delivery_id: int | None) -> None:
    case = run.case(e.get("invoice_id") or "")
    if case is None:
        return
    if _is_our_attempt(case, e):
        _our_attempt_reported(run, case, e, succeeded=True)
        return
    if not may(_model(case), "recover"):
        return  # already recovered or closed: a duplicate success changes nothing
    _recover(run, case, via="provider", amount=e.get("amount_paid"))


def _on_payment_method_updated(run: _Run, e: Json, delivery_id: int | None) -> None:
    run.emit("PaymentMethodUpdated", {"payment_method_id": e.get("payment_method_id"), "delivery_id": delivery_id})
    for case in list(run.state["cases"].values()):
        if case["state"] == CaseState.AWAITING_CUSTOMER:
            _resume(run, case, "the customer updated their payment method")


def _on_closed(run: _Run, e: Json, delivery_id: int | None) -> None:
    reason = {"invoice_voided": "voided", "invoice_uncollectible": "uncollectible"}[e["kind"]]
    case = run.case(e.get("invoice_id") or "")
    if case is not None and may(_model(case), "close"):
        run.emit("InvoiceClosed", {"invoice_id": case["invoice_id"], "reason": reason})
        run.timer(case["invoice_id"], None)


def _on_subscription(run: _Run, e: Json, delivery_id: int | None) -> None:
    run.emit("SubscriptionChanged", {"subscription_id": e.get("subscription_id"),
                                     "status": e.get("subscription_status")})
    if e["kind"] != "subscription_deleted":
        return
    for case in list(run.state["cases"].values()):
        if case["subscription_id"] == e.get("subscription_id") and may(_model(case), "close"):
            run.emit("InvoiceClosed", {"invoice_id": case["invoice_id"], "reason": "subscription_deleted"})
            run.timer(case["invoice_id"], None)


_INBOUND = {
    "payment_failed": _on_payment_failed,
    "decline_details": _on_decline_details,
    "action_required": _on_action_required,
    "payment_succeeded": _on_payment_succeeded,
    "payment_method_updated": _on_payment_method_updated,
    "invoice_voided": _on_closed,
    "invoice_uncollectible": _on_closed,
    "subscription_updated": _on_subscription,
    "subscription_deleted": _on_subscription,
}


# ---------------------------------------------------------------------------------------------- timers

def decide_timer(state: Json, invoice_id: str, payload: Json, ctx: Context) -> Decision:
    """A durable timer fired. A timer that no longer matches the case (stale) decides nothing."""
    run = _Run(state, ctx)
    case = run.case(invoice_id)
    if case is None or case["state"] in TERMINAL:
        return run.d
    action = payload.get("action")
    if action == "classify" and case["state"] == CaseState.CLASSIFYING:
        _classify_and_plan(run, invoice_id)
    elif action == "retry" and case["state"] == CaseState.RETRY_SCHEDULED and ctx.provider in ctx.paused_providers:
        _pause(run, case, int(payload.get("attempt_no", case["attempts_made"] + 1)))
    elif action == "retry" and case["state"] == CaseState.RETRY_SCHEDULED:
        _start_attempt(run, case, int(payload.get("attempt_no", case["attempts_made"] + 1)))
    elif action == "reconcile" and case["state"] == CaseState.RETRYING and case["inflight_key"]:
        run.d.reconciles.append(_charge(run, case, int(payload["attempt_no"]), case["inflight_key"]))
        run.timer(invoice_id, ctx.now + ctx.reconcile_after, action="reconcile", attempt_no=payload["attempt_no"])
    elif action == "deadline" and case["state"] in (CaseState.AWAITING_CUSTOMER, CaseState.RETRY_SCHEDULED):
        _final(run, case, "the deadline for the customer to act has passed")
    elif action == "recheck" and case["state"] == CaseState.ESCALATED:
        _resume(run, case, "the configuration incident hold has been re-checked")
    return run.d


def _pause(run: _Run, case: Json, attempt_no: int) -> None:
    """An incident is open for this provider: hold the retry. Each case rechecks at its own offset within the
    recheck period, so the catch-up after the incident clears is paced, not a thundering herd."""
    period = run.ctx.pause_recheck.total_seconds()
    offset = zlib.crc32(case["invoice_id"].encode()) % max(1, int(period))
    at = run.ctx.now + run.ctx.pause_recheck + timedelta(seconds=offset)
    run.emit("RetryPaused", {"invoice_id": case["invoice_id"], "action": "retry", "at": iso(at),
                             "attempt_no": attempt_no, "max_attempts": case["max_attempts"],
                             "strategy": case["strategy"],
                             "explanation": f"retry held: an incident is open for {run.ctx.provider}; "
                                            f"rechecking at {at:%a %H:%M} UTC"})
    run.timer(case["invoice_id"], at, action="retry", attempt_no=attempt_no)


def _start_attempt(run: _Run, case: Json, attempt_no: int) -> None:
    if not may(_model(case), "begin_attempt"):
        _final(run, case, "no attempts left")
        return
    key = attempt_key(run.state["tenant_id"], case["invoice_id"], attempt_no)
    run.emit("AttemptStarted", {"invoice_id": case["invoice_id"], "attempt_no": attempt_no,
                                "idempotency_key": key, "at": iso(run.ctx.now),
                                "reconcile_at": iso(run.ctx.now + run.ctx.reconcile_after)})
    run.d.charges.append(_charge(run, case, attempt_no, key))
    run.timer(case["invoice_id"], run.ctx.now + run.ctx.reconcile_after, action="reconcile",
              attempt_no=attempt_no)


def _charge(run: _Run, case: Json, attempt_no: int, key: str) -> ChargeRequest:
    return ChargeRequest(case["invoice_id"], attempt_no, key, case["amount_due"], case["currency"], case["card"])


# ---------------------------------------------------------------------------------------------- attempt results

def decide_attempt_result(state: Json, invoice_id: str, attempt_no: int, outcome: str, decline: Json | None,
                          ctx: Context) -> Decision:
    """The provider answered our attempt: `succeeded`, `failed` (with decline codes) or `unknown`."""
    run = _Run(state, ctx)
    case = run.case(invoice_id)
    key = attempt_key(state["tenant_id"], invoice_id, attempt_no)
    if case is None or case["inflight_key"] != key:
        return run.d  # already settled (by a webhook or an earlier reconcile)
    if outcome == "succeeded":
        run.emit("AttemptSucceeded", {"invoice_id": invoice_id, "attempt_no": attempt_no, "idempotency_key": key})
        _recover(run, case, via="retry", amount=case["amount_due"])
    elif outcome == "failed":
        _attempt_failed(run, case, attempt_no, decline or {})
    else:
        run.emit("AttemptUnknown", {"invoice_id": invoice_id, "attempt_no": attempt_no, "idempotency_key": key,
                                    "reason": (decline or {}).get("message")})
    return run.d


def _attempt_failed(run: _Run, case: Json, attempt_no: int, decline: Json) -> None:
    run.emit("AttemptFailed", {"invoice_id": case["invoice_id"], "attempt_no": attempt_no,
                               "idempotency_key": case["inflight_key"], "decline": decline})
    _classify_and_plan(run, case["invoice_id"], decline_override=decline)


def _is_our_attempt(case: Json, e: Json) -> bool:
    key = e.get("request_idempotency_key")
    return bool(key) and key in case["attempt_keys"]


def _our_attempt_reported(run: _Run, case: Json, e: Json, *, succeeded: bool) -> None:
    """The provider's webhook about our own attempt: settles it if still in flight, else only confirms."""
    key = e["request_idempotency_key"]
    if case["inflight_key"] != key:
        run.emit("LateEventIgnored", {"invoice_id": case["invoice_id"], "event": e["provider_event_type"],
                                      "reason": f"webhook for our attempt {key}, already recorded"})
        return
    attempt_no = int(key.rsplit(":", 1)[1])
    if succeeded:
        run.emit("AttemptSucceeded", {"invoice_id": case["invoice_id"], "attempt_no": attempt_no,
                                      "idempotency_key": key})
        _recover(run, case, via="retry", amount=e.get("amount_paid") or case["amount_due"])
    else:
        _attempt_failed(run, case, attempt_no, e.get("decline") or _known_decline(run, case))


# ---------------------------------------------------------------------------------------------- classification

def _record_decline(run: _Run, source: str, invoice_id: str, decline: Json) -> None:
    run.emit("DeclineDetailsReceived", {"link": f"{source}:{invoice_id}", "source": source,
                                        "invoice_id": invoice_id, "decline": decline})


def _matching_declines(run: _Run, invoice_id: str) -> list[Json]:
    """Decline records that belong to this invoice, joined by invoice, payment intent or charge id."""
    case = run.case(invoice_id) or {}
    pi, charges = case.get("payment_intent_id"), set(case.get("charge_ids", []))
    return [r for r in run.state["declines"].values()
            if r.get("invoice_id") == invoice_id or (pi and r.get("payment_intent_id") == pi)
            or (r.get("charge_id") in charges)]


def _details_complete(run: _Run, invoice_id: str) -> bool:
    """The invoice event carried the codes, or both the charge's and the payment intent's details arrived."""
    sources = {r["source"] for r in _matching_declines(run, invoice_id)}
    return "invoice" in sources or {"charge", "payment_intent"} <= sources


def _known_decline(run: _Run, case: Json) -> Json:
    merged: Json = {}
    for record in sorted(_matching_declines(run, case["invoice_id"]), key=lambda r: r["source"]):
        merged.update({k: v for k, v in record["decline"].items() if v is not None})
    return merged


def _classify_and_plan(run: _Run, invoice_id: str, decline_override: Json | None = None) -> None:
    case = run.case(invoice_id)
    assert case is not None
    decline = decline_override if decline_override is not None else _known_decline(run, case)
    classification = run.ctx.classify(run.ctx.provider, decline)
    card = {k: decline.get(k) for k in ("card_brand", "card_fingerprint", "card_country") if decline.get(k)}
    run.emit("FailureClassified", {"invoice_id": invoice_id, "classification": classification, "card": card,
                                   "at": iso(run.ctx.now), "provider": run.ctx.provider})
    if classification.get("unknown"):
        _unknown_code(run, invoice_id, classification)
    case = run.case(invoice_id)
    assert case is not None
    history = run.ctx.card_history.get(case["card"].get("card_fingerprint", ""), ())
    plan = run.ctx.planner.plan(customer=run.state, case=case, classification=classification, now=run.ctx.now,
                                card_history=history)
    _apply_plan(run, case, plan)


def _unknown_code(run: _Run, invoice_id: str, classification: Json) -> None:
    """An operator should add a table row: one alert per provider and code (the fallback already capped it)."""
    code = str(classification.get("unknown_code") or classification.get("reason"))
    tenant = run.state["tenant_id"]
    run.emit("UnknownCodeSeen", {"invoice_id": invoice_id, "provider": run.ctx.provider, "code": code,
                                 "handled_as": classification.get("category"),
                                 "table": f"{classification.get('table_id')} v{classification.get('table_version')}"})
    run.notify("alert", f"alert:{tenant}:unknown-code:{run.ctx.provider}:{code}", {
        "kind": "engineering", "title": f"unknown decline code: {code}",
        "text": f"{run.ctx.provider} sent {code}, which no classification row covers; it was handled as "
                f"{classification.get('category')} with a small attempt cap. Add a row to the table.",
        "severity": "warning", "fields": {"tenant": tenant, "provider": run.ctx.provider, "code": code}},
        invoice_id)


def _plan_payload(case: Json, plan: Plan, **extra: Any) -> Json:
    return {"invoice_id": case["invoice_id"], "action": plan.action, "at": iso(plan.at),
            "attempt_no": plan.attempt_no, "max_attempts": plan.max_attempts, "explanation": plan.explanation,
            "strategy": plan.strategy, **extra}


def _apply_plan(run: _Run, case: Json, plan: Plan) -> None:
    if run.ctx.retry_mode == "observe" and plan.action == "retry":
        run.emit("ShadowDecision", _plan_payload(case, plan, shadow=True))
        deadline = (plan.at or run.ctx.now) + timedelta(days=30)
        run.emit("AwaitingCustomer", _plan_payload(case, plan, action="observe", at=iso(deadline)))
        run.timer(case["invoice_id"], deadline, action="deadline")
        return
    apply = _PLAN_ACTIONS.get(plan.action, _apply_final)
    apply(run, case, plan)
    if plan.email_template:
        _email(run, case, plan.email_template, plan)
    if plan.alert:
        _alert(run, case, plan.alert, plan)


def _apply_retry(run: _Run, case: Json, plan: Plan) -> None:
    payload = _plan_payload(case, plan, retryable=True)
    if not may(CaseModel(case["state"], True, case["attempts_made"], plan.max_attempts), "schedule_retry"):
        _final(run, case, f"no attempts left ({case['attempts_made']} of {plan.max_attempts})")
        return
    run.emit("RetryScheduled", payload)
    run.timer(case["invoice_id"], plan.at, action="retry", attempt_no=plan.attempt_no)


def _apply_await(run: _Run, case: Json, plan: Plan) -> None:
    run.emit("AwaitingCustomer", _plan_payload(case, plan))
    run.timer(case["invoice_id"], plan.at, action="deadline")


def _apply_escalate(run: _Run, case: Json, plan: Plan) -> None:
    run.emit("Escalated", _plan_payload(case, plan))
    run.timer(case["invoice_id"], plan.at or run.ctx.now + timedelta(hours=6), action="recheck")


def _apply_halt(run: _Run, case: Json, plan: Plan) -> None:
    run.emit("Halted", _plan_payload(case, plan))
    run.timer(case["invoice_id"], None)


def _apply_final(run: _Run, case: Json, plan: Plan) -> None:
    run.emit("Exhausted", _plan_payload(case, plan, action="final", final_action=plan.final_action))
    run.timer(case["invoice_id"], None)
    if plan.final_action and plan.final_action != "leave_past_due":
        run.notify("provider", f"final:{run.state['tenant_id']}:{case['invoice_id']}", {
            "action": plan.final_action, "invoice_id": case["invoice_id"],
            "subscription_id": case["subscription_id"], "customer_id": run.state["customer_id"]}, case["invoice_id"])


_PLAN_ACTIONS = {"retry": _apply_retry, "await_customer": _apply_await, "escalate": _apply_escalate,
                 "halt": _apply_halt, "final": _apply_final}


def _final(run: _Run, case: Json, why: str) -> None:
    strategy = case["strategy"] or {}
    plan = Plan("final", None, case["attempts_made"], case["max_attempts"], why, strategy,
                email_template="final_notice", final_action=case.get("final_action") or strategy.get("final_action"))
    _apply_plan(run, case, plan)


def _resume(run: _Run, case: Json, why: str) -> None:
    at = run.ctx.now + run.ctx.resume_delay
    plan = Plan("retry", at, case["attempts_made"] + 1, max(case["max_attempts"], case["attempts_made"] + 1),
                f"prompt retry: {why}", case["strategy"] or {})
    if not may(CaseModel(case["state"], True, case["attempts_made"], plan.max_attempts), "schedule_retry"):
        return
    run.emit("RetryScheduled", _plan_payload(case, plan, retryable=True))
    run.timer(case["invoice_id"], at, action="retry", attempt_no=plan.attempt_no)


def _recover(run: _Run, case: Json, *, via: str, amount: int | None) -> None:
    run.emit("InvoiceRecovered", {"invoice_id": case["invoice_id"], "via": via, "at": iso(run.ctx.now),
                                  "amount": amount or case["amount_due"], "currency": case["currency"]})
    run.timer(case["invoice_id"], None)
    _email(run, case, "recovered", None)


def _email(run: _Run, case: Json, template: str, plan: Plan | None) -> None:
    to = run.state.get("email")
    if not to:
        return
    tenant, customer = run.state["tenant_id"], run.state["customer_id"]
    key = f"email:{tenant}:{case['invoice_id']}:{template}:{case['attempts_made']}"
    run.notify("email", key, {
        "template": template, "to": to, "customer_id": customer, "invoice_id": case["invoice_id"],
        "amount_due": case["amount_due"], "currency": case["currency"] or "usd",
        "hosted_invoice_url": case["hosted_invoice_url"],
        "next_attempt_at": iso(plan.at) if plan and plan.action == "retry" else None,
        "timezone": None, "branding": run.ctx.branding}, case["invoice_id"])


def _alert(run: _Run, case: Json, kind: str, plan: Plan) -> None:
    tenant = run.state["tenant_id"]
    classification = case["classification"] or {}
    reason = classification.get("reason", "unknown")
    day = run.ctx.now.date().isoformat()
    # one engineering alert per incident (provider + reason + day), one fraud report per invoice
    key = {"engineering": f"alert:{tenant}:config:{run.ctx.provider}:{reason}:{day}",
           "fraud": f"alert:{tenant}:fraud:{case['invoice_id']}"}.get(
        kind, f"alert:{tenant}:{kind}:{run.state['customer_id']}")
    run.notify("alert", key, {
        "kind": kind, "title": f"{kind.replace('_', ' ')}: {reason}", "text": plan.explanation,
        "severity": "critical" if kind in ("engineering", "fraud") else "warning",
        "fields": {"tenant": tenant, "customer": run.state["customer_id"], "invoice": case["invoice_id"],
                   "category": str(classification.get("category")), "reason": reason}}, case["invoice_id"])
