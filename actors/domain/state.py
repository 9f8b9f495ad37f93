"""The shape of a customer's state, as checkpointed (JSONB) and folded by `actors.domain.case`.

The state stays plain JSON — the checkpoint is exactly these dicts — and these TypedDicts say what each key holds,
so that every write in the fold is checked against the checkpoint's shape. Keys marked NotRequired appear only once
something sets them. (No `from __future__ import annotations` here: Python 3.11 reads NotRequired only from a
TypedDict whose annotations are evaluated.)
"""

from typing import Any, NotRequired, TypedDict

from actors.domain.machine import CaseState

Json = dict[str, Any]


class NextAction(TypedDict):
    kind: str | None  # classify | retry | reconcile | await_customer | escalate | halt | final | observe
    at: str | None
    attempt_no: NotRequired[int | None]


class CaseJson(TypedDict):
    """One invoice's recovery case."""

    invoice_id: str
    state: str  # a CaseState value
    amount_due: int
    currency: str | None
    subscription_id: str | None
    hosted_invoice_url: str | None
    attempts_made: int  # payrisk's own retry attempts
    max_attempts: int
    retryable: bool
    classification: Json | None
    first_failed_at: str | None
    last_failed_at: str | None
    next_action: NextAction | None
    inflight_key: str | None  # the attempt key of our charge in flight
    attempt_keys: list[str]
    payment_intent_id: str | None
    charge_ids: list[str]
    card: Json  # card_brand, card_fingerprint, card_country
    strategy: Json | None  # id, version, segment, final_action
    explanation: str | None
    recovered_amount: int
    recovered_at: str | None
    recovered_via: str | None
    closed_reason: str | None
    final_action: str | None
    emails: list[str]  # templates sent, in order
    provider_failures: int
    failed_occurred_at: str | None
    payment_method_id: str | None  # the instrument that failed
    details_requested: int | None  # failure_no of the last API read asked for
    details_fetched: int | None  # failure_no of the last API read answered
    retry_payment_method: str | None  # the instrument a card update gave: the next retry charges it
    card_updated_at: str | None
    resume_reason: str | None
    inflight_payment_method: str | None
    recovered_credit: str | None
    charge_less: bool
    paused: NotRequired[bool]  # dunning paused by an operator


class CustomerJson(TypedDict):
    """A customer's state: its cases by invoice id, its decline records by link, what payrisk knows of it."""

    tenant_id: str
    customer_id: str
    cases: dict[str, CaseJson]
    declines: dict[str, Json]
    payment_method_id: str | None
    subscription_status: str | None
    email: str | None
    failures: int
    recoveries: int
    first_failure_at: str | None
    last_failure_at: str | None
    profile: Json
    customer_since: str | None  # the earliest start the provider told of, ISO-8601 UTC
    customer_lookup: str | None  # requested | done
    payment_method_at: str | None
    customer_lookup_for: NotRequired[str]
    profile_request: NotRequired[str]
    operator_requests: NotRequired[dict[str, str]]  # request id → "done: …" / "refused: …"


_STATE_PRIORITY = [CaseState.RETRYING, CaseState.RETRY_SCHEDULED, CaseState.CLASSIFYING,
                   CaseState.AWAITING_CUSTOMER, CaseState.ESCALATED, CaseState.HALTED, CaseState.EXHAUSTED]


def empty_state(tenant_id: str, customer_id: str) -> Json:
    state: CustomerJson = {
        "tenant_id": tenant_id, "customer_id": customer_id, "cases": {}, "declines": {}, "payment_method_id": None,
        "subscription_status": None, "email": None, "failures": 0, "recoveries": 0, "first_failure_at": None,
        "last_failure_at": None, "profile": {}, "customer_since": None, "customer_lookup": None,
        "payment_method_at": None}
    return dict(state)


def new_case(invoice_id: str) -> CaseJson:
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
