"""A customer's recovery state and its pure fold over recorded events (event sourcing).

`evolve(state, event_type, payload)` — `apply(state, event)` for an event already made — is the only way state
changes, so replaying the event log reproduces the checkpoint exactly (invariant I5). The fold dispatches on the
event's type through `FOLDS`: every customer event type has an entry, those that change no state say so
(`RECORDED_ONLY`), and a type without one is an error, never a silent no-op. State is plain JSON-able data
(`actors.domain.state`); the transitions machine validates every move.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, cast

import orjson

from actors.domain.events import (
    AttemptEvent,
    AttemptFailed,
    AttemptStarted,
    AttemptSucceeded,
    AttemptUnknown,
    AwaitingCustomer,
    CustomerEvent,
    CustomerForgotten,
    DeclineDetailsReceived,
    DeclineJoined,
    DetailsFetched,
    DetailsRequested,
    Escalated,
    Exhausted,
    FailureClassified,
    Halted,
    InvoiceClosed,
    InvoiceRecovered,
    LateEventIgnored,
    NotificationRequested,
    OperatorActed,
    PaymentFailed,
    PaymentMethodKnown,
    PaymentMethodUpdated,
    PlanEvent,
    ProfileUpdated,
    RetryPaused,
    RetryScheduled,
    ShadowDecision,
    SubscriptionChanged,
    UnknownCodeSeen,
    UnknownEventError,
    parse_event,
)
from actors.domain.machine import CaseModel, Trigger, move
from actors.domain.state import CaseJson, CustomerJson, Json, customer_status, empty_state, new_case

E = TypeVar("E", bound=CustomerEvent)


@dataclass(frozen=True, slots=True)
class Fold(Generic[E]):
    """How one event type changes state: its case's data, the machine trigger it fires, the customer's data."""

    case: Callable[[CaseJson, E], None] | None = None
    trigger: Trigger | None = None
    customer: Callable[[CustomerJson, E], None] | None = None
    #: an event naming an invoice payrisk has no case for opens one, unless it is data about the customer only
    opens_case: bool = True
    #: the customer-level containers `customer` changes in place (`cases`: any case, not only the event's); `apply`
    #: copies these and the event's own case, and shares everything else with the previous state
    changes: frozenset[str] = frozenset()


#: recorded for the trail and the read models; changes no state
RECORDED_ONLY: Fold[Any] = Fold()


def evolve(state: Json, event_type: str, payload: Json) -> Json:
    """Apply one recorded event as stored; returns a new state (the input is not modified).

    Raises `UnknownEventError` for a type with no registered model or no fold, `InvalidEventError` for a payload
    that does not match its type."""
    event = parse_event(event_type, payload)
    if not isinstance(event, CustomerEvent):
        raise UnknownEventError(event_type, "is not an event of a customer's stream")
    return apply(state, event)


def apply(state: Json, event: CustomerEvent) -> Json:
    """Apply one event; returns a new state (the input is not modified)."""
    fold = FOLDS.get(type(event))
    if fold is None:
        raise UnknownEventError(event.event_type, "has no fold: register it in FOLDS (RECORDED_ONLY if it "
                                                  "changes no state)")
    invoice_id = getattr(event, "invoice_id", None)
    new = cast(CustomerJson, _copy_for(state, invoice_id, fold.changes))
    if invoice_id and (invoice_id in new["cases"] or fold.opens_case):
        case = new["cases"].setdefault(invoice_id, new_case(invoice_id))
        if fold.case is not None:
            fold.case(case, event)
        if fold.trigger:
            model = CaseModel(case["state"], case["retryable"], case["attempts_made"], case["max_attempts"])
            case["state"] = move(model, fold.trigger)
    if fold.customer is not None:
        fold.customer(new, event)
    return cast(Json, new)


def _copy(state: Json) -> Json:
    """A deep copy. State is plain JSON (it is stored as JSONB), and a JSON round trip is ~15× deepcopy."""
    copied: Json = orjson.loads(orjson.dumps(state))
    return copied


def _copy_for(state: Json, invoice_id: str | None, changes: frozenset[str]) -> Json:
    """A state an event's fold may change without touching `state`: new dicts for the customer and its cases, a
    deep copy of the event's case and of the containers the fold declares; every other case and container is
    shared (no fold changes them), so an event costs its own case, not the customer's whole history."""
    new = dict(state)
    for name in changes - {"cases"}:
        new[name] = _copy(state[name])
    if "cases" in changes:
        new["cases"] = _copy(state["cases"])
    else:
        new["cases"] = dict(state["cases"])
        if invoice_id in new["cases"]:
            new["cases"][invoice_id] = _copy(new["cases"][invoice_id])
    return new


# ---------------------------------------------------------------------------------------------- a case's data

def _on_failed(case: CaseJson, e: PaymentFailed) -> None:
    _on_invoice_known(case, e)
    case["first_failed_at"] = case["first_failed_at"] or e.at
    case["last_failed_at"] = e.at
    case["provider_failures"] += 1
    case["failed_occurred_at"] = e.occurred_at
    case["charge_less"] = bool(e.charge_less)
    if e.payment_method_id:
        case["payment_method_id"] = e.payment_method_id
    case["next_action"] = {"kind": "classify", "at": e.classify_at}
    if e.charge_id and e.charge_id not in case["charge_ids"]:
        case["charge_ids"].append(e.charge_id)


def _on_invoice_known(case: CaseJson, e: PaymentFailed) -> None:
    """What the failure says of the invoice; a value it does not carry never erases one known before."""
    if e.amount_due is not None:
        case["amount_due"] = e.amount_due
    if e.currency is not None:
        case["currency"] = e.currency
    if e.subscription_id is not None:
        case["subscription_id"] = e.subscription_id
    if e.hosted_invoice_url is not None:
        case["hosted_invoice_url"] = e.hosted_invoice_url
    if e.payment_intent_id is not None:
        case["payment_intent_id"] = e.payment_intent_id


def _on_classified(case: CaseJson, e: FailureClassified) -> None:
    case["classification"] = e.classification
    case["retryable"] = bool(e.classification.get("retryable"))
    case["card"] = e.card or case["card"]


def _on_plan(case: CaseJson, e: PlanEvent) -> None:
    case["strategy"] = e.strategy or case["strategy"]
    case["explanation"] = e.explanation
    case["max_attempts"] = e.max_attempts
    case["next_action"] = {"kind": e.action, "at": e.at, "attempt_no": e.attempt_no}


def _on_retry_scheduled(case: CaseJson, e: RetryScheduled) -> None:
    _on_plan(case, e)
    if e.retryable is not None:
        case["retryable"] = e.retryable
    case["resume_reason"] = e.resume_reason


def _on_exhausted(case: CaseJson, e: Exhausted) -> None:
    _on_plan(case, e)
    if e.final_action:
        case["final_action"] = e.final_action


def _on_attempt_started(case: CaseJson, e: AttemptStarted) -> None:
    case["inflight_key"] = e.idempotency_key
    case["inflight_payment_method"] = e.payment_method_id
    case["attempt_keys"].append(e.idempotency_key)
    case["next_action"] = {"kind": "reconcile", "at": e.reconcile_at, "attempt_no": e.attempt_no}


def _on_attempt_done(case: CaseJson, e: AttemptEvent) -> None:
    case["attempts_made"] = max(case["attempts_made"], e.attempt_no)
    case["inflight_key"] = None


def _on_recovered(case: CaseJson, e: InvoiceRecovered) -> None:
    case["recovered_amount"] = e.amount or case["amount_due"]
    case["recovered_at"] = e.at
    case["recovered_via"] = e.via
    case["recovered_credit"] = e.credited_to
    case["inflight_key"] = None
    case["next_action"] = None


def _on_closed(case: CaseJson, e: InvoiceClosed) -> None:
    case["closed_reason"] = e.reason
    case["next_action"] = None
    case["inflight_key"] = None


def _on_details_requested(case: CaseJson, e: DetailsRequested) -> None:
    case["details_requested"] = e.failure_no


def _on_details_fetched(case: CaseJson, e: DetailsFetched) -> None:
    case["details_fetched"] = e.failure_no


def _on_notification(case: CaseJson, e: NotificationRequested) -> None:
    if e.template:
        case["emails"].append(e.template)


def _on_operator(case: CaseJson, e: OperatorActed) -> None:
    """Dunning paused / resumed by an operator (actors/domain/operator.py); timers respect the flag."""
    if e.outcome == "done" and e.action in ("pause", "resume"):
        case["paused"] = e.action == "pause"


# ---------------------------------------------------------------------------------------------- the customer's data

_CLOSED = frozenset({"recovered", "closed", "halted", "exhausted"})


def _customer_failed(state: CustomerJson, e: PaymentFailed) -> None:
    state["failures"] += 1
    state["first_failure_at"] = state["first_failure_at"] or e.at
    state["last_failure_at"] = e.at
    state["email"] = e.customer_email or state["email"]


def _decline_received(state: CustomerJson, e: DeclineDetailsReceived) -> None:
    old = state["declines"].get(e.link, {})
    given = {"source": e.source, "invoice_id": e.invoice_id, "payment_intent_id": e.payment_intent_id,
             "charge_id": e.charge_id, "amount": e.amount, "currency": e.currency, "occurred_at": e.occurred_at,
             "payment_method_id": e.payment_method_id, "failure_no": e.failure_no, "joined": None}
    record = {k: v or old.get(k) for k, v in given.items()}
    record["decline"] = _merge(old.get("decline", {}), e.decline)
    state["declines"][e.link] = record


def _decline_joined(state: CustomerJson, e: DeclineJoined) -> None:
    record = state["declines"].get(e.link)
    if record is not None:
        record.update({"invoice_id": e.invoice_id, "joined": e.how})


def _details_requested(state: CustomerJson, e: DetailsRequested) -> None:
    if e.customer:
        state["customer_lookup"] = "requested"
        state["customer_lookup_for"] = e.invoice_id


def _details_fetched(state: CustomerJson, e: DetailsFetched) -> None:
    """The read answered (`done`, even with an error: it was made), or never did before the classification
    deadline (`unanswered`: forgotten, so that a later failure may ask again)."""
    if e.customer:
        state["customer_lookup"] = None if e.unanswered else "done"
    _learn_since(state, e.customer_since)


def _recovered(state: CustomerJson, e: InvoiceRecovered) -> None:
    state["recoveries"] += 1


def _method(state: CustomerJson, e: PaymentMethodUpdated | PaymentMethodKnown) -> None:
    """PaymentMethodUpdated (a card update) and PaymentMethodKnown (the default, as the provider showed it)."""
    state["payment_method_id"] = e.payment_method_id
    state["payment_method_at"] = e.occurred_at or state.get("payment_method_at")
    _learn_since(state, e.customer_since)


def _card_updated(state: CustomerJson, e: PaymentMethodUpdated) -> None:
    """A card update: every open case's next retry charges that instrument."""
    _method(state, e)
    for case in state["cases"].values():
        if case["state"] not in _CLOSED:
            case["retry_payment_method"] = e.payment_method_id
            case["card_updated_at"] = e.at


def _subscription(state: CustomerJson, e: SubscriptionChanged) -> None:
    state["subscription_status"] = e.status
    _learn_since(state, e.customer_since)


def _profile(state: CustomerJson, e: ProfileUpdated) -> None:
    state["profile"] = {**state.get("profile", {}), **e.profile}
    state["profile_request"] = e.request_id


def _forgotten(state: CustomerJson, e: CustomerForgotten) -> None:
    """Personal data erased on request (`payrisk customers forget`): the amounts and decisions stay."""
    state["email"] = None
    state["profile"] = {k: v for k, v in state.get("profile", {}).items() if k != "email"}


_OPERATOR_REQUESTS_KEPT = 50


def _operator_acted(state: CustomerJson, e: OperatorActed) -> None:
    """The outcome of each recent operator request, so that a request decided twice is recorded once."""
    kept = dict(state.get("operator_requests") or {})
    kept[e.request_id] = f"{e.outcome}: {e.explanation}"
    state["operator_requests"] = dict(list(kept.items())[-_OPERATOR_REQUESTS_KEPT:])


def _learn_since(state: CustomerJson, since: str | None) -> None:
    """Tenure: the earliest start the provider told us of (customer created, subscription started)."""
    if not since:
        return
    value = datetime.fromisoformat(since).astimezone(UTC).isoformat()  # one spelling, so text order is time order
    if state.get("customer_since") is None or value < str(state["customer_since"]):
        state["customer_since"] = value


def _merge(old: Json, new: Json) -> Json:
    """Union of two decline records; a field already known is kept unless the new one adds a value."""
    merged = dict(old)
    merged.update({k: v for k, v in new.items() if v is not None})
    return merged


# ---------------------------------------------------------------------------------------------- the table

def _on(cls: type[E], fold: Fold[E]) -> tuple[type[CustomerEvent], Fold[Any]]:
    """One entry of FOLDS; typed so that each handler takes the event type it is registered for."""
    return cls, fold


#: every customer event type → how it changes state
FOLDS: Mapping[type[CustomerEvent], Fold[Any]] = dict([
    _on(PaymentFailed, Fold(_on_failed, "fail", _customer_failed)),
    _on(DeclineDetailsReceived, Fold(customer=_decline_received, opens_case=False, changes=frozenset({"declines"}))),
    _on(DeclineJoined, Fold(customer=_decline_joined, opens_case=False, changes=frozenset({"declines"}))),
    _on(DetailsRequested, Fold(_on_details_requested, customer=_details_requested)),
    _on(DetailsFetched, Fold(_on_details_fetched, customer=_details_fetched)),
    _on(FailureClassified, Fold(_on_classified)),
    _on(RetryScheduled, Fold(_on_retry_scheduled, "schedule_retry")),
    _on(RetryPaused, Fold(_on_plan)),
    _on(AttemptStarted, Fold(_on_attempt_started, "begin_attempt")),
    _on(AttemptFailed, Fold(_on_attempt_done, "attempt_failed")),
    _on(AttemptSucceeded, Fold(_on_attempt_done)),
    _on(AwaitingCustomer, Fold(_on_plan, "await_customer")),
    _on(Escalated, Fold(_on_plan, "escalate")),
    _on(Halted, Fold(_on_plan, "halt")),
    _on(Exhausted, Fold(_on_exhausted, "exhaust")),
    _on(InvoiceRecovered, Fold(_on_recovered, "recover", _recovered)),
    _on(InvoiceClosed, Fold(_on_closed, "close")),
    _on(NotificationRequested, Fold(_on_notification)),
    _on(PaymentMethodUpdated, Fold(customer=_card_updated, opens_case=False, changes=frozenset({"cases"}))),
    _on(PaymentMethodKnown, Fold(customer=_method)),
    _on(SubscriptionChanged, Fold(customer=_subscription)),
    _on(ProfileUpdated, Fold(customer=_profile)),
    _on(CustomerForgotten, Fold(customer=_forgotten)),
    _on(OperatorActed, Fold(_on_operator, customer=_operator_acted, opens_case=False)),
    _on(AttemptUnknown, RECORDED_ONLY),  # the reconcile timer asks again with the same key
    _on(UnknownCodeSeen, RECORDED_ONLY),  # the alert is its own outbox row
    _on(ShadowDecision, RECORDED_ONLY),  # observe mode: what would have been done
    _on(LateEventIgnored, RECORDED_ONLY),  # a late event never reopens a case (I7)
])

__all__ = ["FOLDS", "RECORDED_ONLY", "CaseJson", "CustomerJson", "Fold", "Json", "apply",
           "customer_status", "empty_state", "evolve", "new_case"]
