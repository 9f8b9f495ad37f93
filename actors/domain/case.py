"""A customer's recovery state and its pure fold over recorded events (event sourcing).

`evolve(state, event)` is the only way state changes, so replaying the event log reproduces the checkpoint
exactly (invariant I5). State is plain JSON-able data; the transitions machine validates every move.
"""

from __future__ import annotations

from typing import Any

import orjson

from actors.domain.machine import CaseModel, CaseState, move

Json = dict[str, Any]

#: recorded event type → the case trigger it fires (None: data only)
TRIGGERS: dict[str, str | None] = {
    "PaymentFailed": "fail",
    "DeclineDetailsReceived": None,
    "FailureClassified": None,
    "RetryScheduled": "schedule_retry",
    "AttemptStarted": "begin_attempt",
    "AttemptFailed": "attempt_failed",
    "AttemptSucceeded": None,
    "AttemptUnknown": None,
    "AwaitingCustomer": "await_customer",
    "Escalated": "escalate",
    "Halted": "halt",
    "Exhausted": "exhaust",
    "InvoiceRecovered": "recover",
    "InvoiceClosed": "close",
    "PaymentMethodUpdated": None,
    "SubscriptionChanged": None,
    "LateEventIgnored": None,
    "NotificationRequested": None,
    "ShadowDecision": None,
    "RetryPaused": None,
    "ProfileUpdated": None,
    "UnknownCodeSeen": None,
}

_STATE_PRIORITY = [CaseState.RETRYING, CaseState.RETRY_SCHEDULED, CaseState.CLASSIFYING,
                   CaseState.AWAITING_CUSTOMER, CaseState.ESCALATED, CaseState.HALTED, CaseState.EXHAUSTED]


def empty_state(tenant_id: str, customer_id: str) -> Json:
    return {"tenant_id": tenant_id, "customer_id": customer_id, "cases": {}, "declines": {},
            "payment_method_id": None, "subscription_status": None, "email": None,
            "failures": 0, "recoveries": 0, "first_failure_at": None, "last_failure_at": None, "profile": {}}


def new_case(invoice_id: str) -> Json:
    return {"invoice_id": invoice_id, "state": CaseState.HEALTHY.value, "amount_due": 0, "currency": None,
            "subscription_id": None, "hosted_invoice_url": None, "attempts_made": 0, "max_attempts": 1,
            "retryable": False, "classification": None, "first_failed_at": None, "last_failed_at": None,
            "next_action": None, "inflight_key": None, "attempt_keys": [], "payment_intent_id": None,
            "charge_ids": [], "card": {}, "strategy": None, "explanation": None, "recovered_amount": 0,
            "recovered_at": None, "recovered_via": None, "closed_reason": None, "final_action": None,
            "emails": [], "provider_failures": 0}


def customer_status(state: Json) -> str:
    """The customer's headline state: its most urgent open case, else its latest outcome, else healthy."""
    states = [c["state"] for c in state["cases"].values()]
    for candidate in _STATE_PRIORITY:
        if candidate.value in states:
            return candidate.value
    return CaseState.RECOVERED.value if CaseState.RECOVERED.value in states else CaseState.HEALTHY.value


def evolve(state: Json, event_type: str, payload: Json) -> Json:
    """Apply one recorded event; returns a new state (the input is not modified)."""
    state = _copy(state)
    invoice_id = payload.get("invoice_id")
    case = state["cases"].setdefault(invoice_id, new_case(invoice_id)) if invoice_id else None
    if case is not None:
        _update_case(case, event_type, payload)
        trigger = TRIGGERS.get(event_type)
        if trigger:
            model = CaseModel(case["state"], case["retryable"], case["attempts_made"], case["max_attempts"])
            case["state"] = move(model, trigger)
    _update_customer(state, event_type, payload)
    return state


def _copy(state: Json) -> Json:
    """A deep copy. State is plain JSON (it is stored as JSONB), and a JSON round trip is ~15× deepcopy."""
    copied: Json = orjson.loads(orjson.dumps(state))
    return copied


def _update_case(case: Json, event_type: str, p: Json) -> None:
    handler = _CASE_UPDATES.get(event_type)
    if handler is not None:
        handler(case, p)


def _on_failed(case: Json, p: Json) -> None:
    case.update({k: p[k] for k in ("amount_due", "currency", "subscription_id", "hosted_invoice_url",
                                   "payment_intent_id") if p.get(k) is not None})
    case["first_failed_at"] = case["first_failed_at"] or p["at"]
    case["last_failed_at"] = p["at"]
    case["provider_failures"] += 1
    case["next_action"] = {"kind": "classify", "at": p.get("classify_at")}
    if p.get("charge_id") and p["charge_id"] not in case["charge_ids"]:
        case["charge_ids"].append(p["charge_id"])


def _on_classified(case: Json, p: Json) -> None:
    case["classification"] = p["classification"]
    case["retryable"] = bool(p["classification"].get("retryable"))
    case["card"] = p.get("card") or case["card"]


def _on_plan(case: Json, p: Json) -> None:
    case["strategy"] = p.get("strategy") or case["strategy"]
    case["explanation"] = p.get("explanation")
    case["max_attempts"] = p.get("max_attempts", case["max_attempts"])
    case["next_action"] = {"kind": p.get("action"), "at": p.get("at"), "attempt_no": p.get("attempt_no")}
    if p.get("retryable") is not None:
        case["retryable"] = p["retryable"]
    if p.get("final_action"):
        case["final_action"] = p["final_action"]


def _on_attempt_started(case: Json, p: Json) -> None:
    case["inflight_key"] = p["idempotency_key"]
    case["attempt_keys"].append(p["idempotency_key"])
    case["next_action"] = {"kind": "reconcile", "at": p.get("reconcile_at"), "attempt_no": p["attempt_no"]}


def _on_attempt_done(case: Json, p: Json) -> None:
    case["attempts_made"] = max(case["attempts_made"], p["attempt_no"])
    case["inflight_key"] = None


def _on_recovered(case: Json, p: Json) -> None:
    case["recovered_amount"] = p.get("amount") or case["amount_due"]
    case["recovered_at"] = p["at"]
    case["recovered_via"] = p.get("via")
    case["inflight_key"] = None
    case["next_action"] = None


def _on_closed(case: Json, p: Json) -> None:
    case["closed_reason"] = p.get("reason")
    case["next_action"] = None
    case["inflight_key"] = None


def _on_notification(case: Json, p: Json) -> None:
    if p.get("template"):
        case["emails"].append(p["template"])


_CASE_UPDATES = {
    "PaymentFailed": _on_failed,
    "FailureClassified": _on_classified,
    "RetryScheduled": _on_plan,
    "AwaitingCustomer": _on_plan,
    "Escalated": _on_plan,
    "Halted": _on_plan,
    "Exhausted": _on_plan,
    "RetryPaused": _on_plan,
    "AttemptStarted": _on_attempt_started,
    "AttemptFailed": _on_attempt_done,
    "AttemptSucceeded": _on_attempt_done,
    "InvoiceRecovered": _on_recovered,
    "InvoiceClosed": _on_closed,
    "NotificationRequested": _on_notification,
}


def _update_customer(state: Json, event_type: str, p: Json) -> None:
    if event_type == "PaymentFailed":
        state["failures"] += 1
        state["first_failure_at"] = state["first_failure_at"] or p["at"]
        state["last_failure_at"] = p["at"]
        state["email"] = p.get("customer_email") or state["email"]
    elif event_type == "DeclineDetailsReceived":
        old = state["declines"].get(p["link"], {})
        record = {k: p.get(k) or old.get(k) for k in ("source", "invoice_id", "payment_intent_id", "charge_id")}
        record["decline"] = _merge(old.get("decline", {}), p["decline"])
        state["declines"][p["link"]] = record
    elif event_type == "InvoiceRecovered":
        state["recoveries"] += 1
    elif event_type == "PaymentMethodUpdated":
        state["payment_method_id"] = p.get("payment_method_id")
    elif event_type == "SubscriptionChanged":
        state["subscription_status"] = p.get("status")
    elif event_type == "ProfileUpdated":
        state["profile"] = {**state.get("profile", {}), **p["profile"]}
        state["profile_request"] = p.get("request_id")


def _merge(old: Json, new: Json) -> Json:
    """Union of two decline records; a field already known is kept unless the new one adds a value."""
    merged = dict(old)
    merged.update({k: v for k, v in new.items() if v is not None})
    return merged
