"""A customer's recovery state and its pure fold over recorded events (event sourcing).

`evolve(state, event)` is the only way state changes, so replaying the event log reproduces the checkpoint
exactly (invariant I5). State is plain JSON-able data; the transitions machine validates every move.
"""

from __future__ import annotations

from datetime import UTC, datetime
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
    "CustomerForgotten": None,
    "UnknownCodeSeen": None,
    "DeclineJoined": None,
    "DetailsRequested": None,
    "DetailsFetched": None,
    "PaymentMethodKnown": None,
    "OperatorActed": None,
}

#: data-only events that may name an invoice payrisk has no case for: they never open one
_NO_NEW_CASE = frozenset({"DeclineDetailsReceived", "DeclineJoined", "PaymentMethodUpdated", "OperatorActed"})

_STATE_PRIORITY = [CaseState.RETRYING, CaseState.RETRY_SCHEDULED, CaseState.CLASSIFYING,
                   CaseState.AWAITING_CUSTOMER, CaseState.ESCALATED, CaseState.HALTED, CaseState.EXHAUSTED]


def empty_state(tenant_id: str, customer_id: str) -> Json:
    return {"tenant_id": tenant_id, "customer_id": customer_id, "cases": {}, "declines": {},
            "payment_method_id": None, "subscription_status": None, "email": None,
            "failures": 0, "recoveries": 0, "first_failure_at": None, "last_failure_at": None, "profile": {},
            "customer_since": None, "customer_lookup": None, "payment_method_at": None}


def new_case(invoice_id: str) -> Json:
    return {"invoice_id": invoice_id, "state": CaseState.HEALTHY.value, "amount_due": 0, "currency": None,
            "subscription_id": None, "hosted_invoice_url": None, "attempts_made": 0, "max_attempts": 1,
            "retryable": False, "classification": None, "first_failed_at": None, "last_failed_at": None,
            "next_action": None, "inflight_key": None, "attempt_keys": [], "payment_intent_id": None,
            "charge_ids": [], "card": {}, "strategy": None, "explanation": None, "recovered_amount": 0,
            "recovered_at": None, "recovered_via": None, "closed_reason": None, "final_action": None,
            "emails": [], "provider_failures": 0, "failed_occurred_at": None, "payment_method_id": None,
            "details_requested": None, "details_fetched": None, "retry_payment_method": None,
            "card_updated_at": None, "resume_reason": None, "inflight_payment_method": None,
            "recovered_credit": None, "charge_less": False}


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
    case = None
    if invoice_id and (invoice_id in state["cases"] or event_type not in _NO_NEW_CASE):
        case = state["cases"].setdefault(invoice_id, new_case(invoice_id))
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
    case["failed_occurred_at"] = p.get("occurred_at")
    case["charge_less"] = bool(p.get("charge_less"))
    if p.get("payment_method_id"):
        case["payment_method_id"] = p["payment_method_id"]
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
    case["inflight_payment_method"] = p.get("payment_method_id")
    case["attempt_keys"].append(p["idempotency_key"])
    case["next_action"] = {"kind": "reconcile", "at": p.get("reconcile_at"), "attempt_no": p["attempt_no"]}


def _on_attempt_done(case: Json, p: Json) -> None:
    case["attempts_made"] = max(case["attempts_made"], p["attempt_no"])
    case["inflight_key"] = None


def _on_recovered(case: Json, p: Json) -> None:
    case["recovered_amount"] = p.get("amount") or case["amount_due"]
    case["recovered_at"] = p["at"]
    case["recovered_via"] = p.get("via")
    case["recovered_credit"] = p.get("credited_to")
    case["inflight_key"] = None
    case["next_action"] = None


def _on_closed(case: Json, p: Json) -> None:
    case["closed_reason"] = p.get("reason")
    case["next_action"] = None
    case["inflight_key"] = None


def _on_details_requested(case: Json, p: Json) -> None:
    case["details_requested"] = p["failure_no"]


def _on_details_fetched(case: Json, p: Json) -> None:
    case["details_fetched"] = p["failure_no"]


def _on_retry_scheduled(case: Json, p: Json) -> None:
    _on_plan(case, p)
    case["resume_reason"] = p.get("resume_reason")


def _on_notification(case: Json, p: Json) -> None:
    if p.get("template"):
        case["emails"].append(p["template"])


def _on_operator(case: Json, p: Json) -> None:
    """Dunning paused / resumed by an operator (actors/domain/operator.py); timers respect the flag."""
    if p.get("outcome") == "done" and p.get("action") in ("pause", "resume"):
        case["paused"] = p["action"] == "pause"


_CASE_UPDATES = {
    "PaymentFailed": _on_failed,
    "FailureClassified": _on_classified,
    "RetryScheduled": _on_retry_scheduled,
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
    "DetailsRequested": _on_details_requested,
    "DetailsFetched": _on_details_fetched,
    "OperatorActed": _on_operator,
}

_CLOSED = frozenset({"recovered", "closed", "halted", "exhausted"})


def _update_customer(state: Json, event_type: str, p: Json) -> None:
    handler = _CUSTOMER_UPDATES.get(event_type)
    if handler is not None:
        handler(state, p)


def _customer_failed(state: Json, p: Json) -> None:
    state["failures"] += 1
    state["first_failure_at"] = state["first_failure_at"] or p["at"]
    state["last_failure_at"] = p["at"]
    state["email"] = p.get("customer_email") or state["email"]


def _decline_received(state: Json, p: Json) -> None:
    old = state["declines"].get(p["link"], {})
    record = {k: p.get(k) or old.get(k) for k in _RECORD_FIELDS}
    record["decline"] = _merge(old.get("decline", {}), p["decline"])
    state["declines"][p["link"]] = record


def _decline_joined(state: Json, p: Json) -> None:
    record = state["declines"].get(p["link"])
    if record is not None:
        record.update({"invoice_id": p["invoice_id"], "joined": p.get("how")})


def _details_requested(state: Json, p: Json) -> None:
    if p.get("customer"):
        state["customer_lookup"] = "requested"
        state["customer_lookup_for"] = p["invoice_id"]


def _details_fetched(state: Json, p: Json) -> None:
    """The read answered (`done`, even with an error: it was made), or never did before the classification
    deadline (`unanswered`: forgotten, so that a later failure may ask again)."""
    if p.get("customer"):
        state["customer_lookup"] = None if p.get("unanswered") else "done"
    _learn_since(state, p.get("customer_since"))


def _recovered(state: Json, p: Json) -> None:
    state["recoveries"] += 1


def _method(state: Json, p: Json) -> None:
    """PaymentMethodUpdated (a card update) and PaymentMethodKnown (the default, as the provider showed it)."""
    state["payment_method_id"] = p.get("payment_method_id")
    state["payment_method_at"] = p.get("occurred_at") or state.get("payment_method_at")
    _learn_since(state, p.get("customer_since"))


def _card_updated(state: Json, p: Json) -> None:
    """A card update: every open case's next retry charges that instrument."""
    _method(state, p)
    for case in state["cases"].values():
        if case["state"] not in _CLOSED:
            case["retry_payment_method"] = p.get("payment_method_id")
            case["card_updated_at"] = p.get("at")


def _subscription(state: Json, p: Json) -> None:
    state["subscription_status"] = p.get("status")
    _learn_since(state, p.get("customer_since"))


def _profile(state: Json, p: Json) -> None:
    state["profile"] = {**state.get("profile", {}), **p["profile"]}
    state["profile_request"] = p.get("request_id")


def _forgotten(state: Json, p: Json) -> None:
    """Personal data erased on request (`payrisk customers forget`): the amounts and decisions stay."""
    state["email"] = None
    state["profile"] = {k: v for k, v in state.get("profile", {}).items() if k != "email"}


_OPERATOR_REQUESTS_KEPT = 50


def _operator_acted(state: Json, p: Json) -> None:
    """The outcome of each recent operator request, so that a request decided twice is recorded once."""
    kept = dict(state.get("operator_requests") or {})
    kept[p["request_id"]] = f"{p['outcome']}: {p.get('explanation')}"
    state["operator_requests"] = dict(list(kept.items())[-_OPERATOR_REQUESTS_KEPT:])


_CUSTOMER_UPDATES = {
    "PaymentFailed": _customer_failed,
    "DeclineDetailsReceived": _decline_received,
    "DeclineJoined": _decline_joined,
    "DetailsRequested": _details_requested,
    "DetailsFetched": _details_fetched,
    "InvoiceRecovered": _recovered,
    "PaymentMethodUpdated": _card_updated,
    "PaymentMethodKnown": _method,
    "SubscriptionChanged": _subscription,
    "ProfileUpdated": _profile,
    "CustomerForgotten": _forgotten,
    "OperatorActed": _operator_acted,
}


_RECORD_FIELDS = ("source", "invoice_id", "payment_intent_id", "charge_id", "amount", "currency", "occurred_at",
                  "payment_method_id", "failure_no", "joined")


def _learn_since(state: Json, since: str | None) -> None:
    """Tenure: the earliest start the provider told us of (customer created, subscription started)."""
    if not since:
        return
    value = datetime.fromisoformat(since).astimezone(UTC).isoformat()  # one spelling, so text order is time order
    if state.get("customer_since") is None or value < state["customer_since"]:
        state["customer_since"] = value


def _merge(old: Json, new: Json) -> Json:
    """Union of two decline records; a field already known is kept unless the new one adds a value."""
    merged = dict(old)
    merged.update({k: v for k, v in new.items() if v is not None})
    return merged
