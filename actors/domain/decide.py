"""Pure decisions: (state, command, context) → events + timers + outbox rows + provider calls.

Every state change is a typed event (actors/domain/events) folded by `apply`, the fold replay uses, so what is
decided is exactly what replay reproduces. The clock, the classifier and the planner come in through the context;
nothing here does I/O.
"""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

from actors.domain.case import Json
from actors.domain.case import apply as apply_event
from actors.domain.decisions import (
    ChargeRequest,
    Context,
    Decision,
    DetailsFetch,
    OutboxCmd,
    Plan,
    TimerCmd,
    attempt_key,
)
from actors.domain.events import (
    AttemptFailed,
    AttemptStarted,
    AttemptSucceeded,
    AttemptUnknown,
    AwaitingCustomer,
    CustomerEvent,
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
    PaymentFailed,
    PaymentMethodKnown,
    PaymentMethodUpdated,
    RetryPaused,
    RetryScheduled,
    ShadowDecision,
    SubscriptionChanged,
    UnknownCodeSeen,
    dump_event,
)
from actors.domain.machine import TERMINAL, CaseModel, CaseState, may
from strategies.calendar import default_countries
from strategies.network import NetworkLimits, check_network_budget

E = TypeVar("E", bound=CustomerEvent)

#: side effects on the customer or the provider; in observe mode they are recorded, never sent
_SHADOWED_TOPICS = frozenset({"email", "provider"})


class _Run:
    """One decision in progress: emits events (folding them into state) and collects effects."""

    def __init__(self, state: Json, ctx: Context) -> None:
        self.ctx = ctx
        self.d = Decision(state=state)

    @property
    def state(self) -> Json:
        return self.d.state

    def emit(self, event: CustomerEvent) -> None:
        """Fold the event into the state and record it, as it will be stored."""
        self.d.state = apply_event(self.d.state, event)
        self.d.events.append(dump_event(event))

    def case(self, invoice_id: str) -> Json | None:
        case: Json | None = self.state["cases"].get(invoice_id)
        return case

    def timer(self, invoice_id: str, due_at: datetime | None, **payload: Any) -> None:
        self.d.timers.append(TimerCmd(f"invoice:{invoice_id}", due_at, payload))

    def notify(self, topic: str, key: str, payload: Json, invoice_id: str) -> None:
        if self.ctx.retry_mode == "observe" and topic in _SHADOWED_TOPICS:
            what = payload.get("template") or payload.get("action")
            self.emit(ShadowDecision(invoice_id=invoice_id, action=topic, shadow=True, idempotency_key=key,
                                     template=payload.get("template"),
                                     explanation=f"observe mode: {topic} {what} recorded, not sent"))
            return
        self.d.outbox.append(OutboxCmd(topic, key, payload))
        self.emit(NotificationRequested(invoice_id=invoice_id, topic=topic, idempotency_key=key,
                                        template=payload.get("template"), kind=payload.get("kind")))


@overload
def iso(value: datetime) -> str: ...


@overload
def iso(value: datetime | None) -> str | None: ...


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


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
        run.emit(LateEventIgnored(invoice_id=invoice_id, event=e["provider_event_type"],
                                  reason=_ignored_because(case["state"])))
        return
    run.emit(PaymentFailed(
        invoice_id=invoice_id, at=iso(run.ctx.now), occurred_at=e["occurred_at"],
        amount_due=e.get("amount_due"), currency=e.get("currency"),
        subscription_id=e.get("subscription_id"), hosted_invoice_url=e.get("hosted_invoice_url"),
        payment_intent_id=e.get("payment_intent_id"), charge_id=e.get("charge_id"),
        provider_attempt_count=e.get("attempt_count"), customer_email=e.get("customer_email"),
        next_payment_attempt=e.get("next_payment_attempt"), delivery_id=delivery_id,
        payment_method_id=e.get("payment_method_id"),
        classify_at=iso(run.ctx.now + run.ctx.classify_wait),
        charge_less=bool(e.get("no_charge_made")) and not e.get("decline")))
    if e.get("next_payment_attempt") and run.ctx.retry_mode == "own":
        _provider_retries_on(run, invoice_id)
    case = run.case(invoice_id)
    assert case is not None
    if e.get("decline"):
        _record_decline(run, "invoice", invoice_id, e["decline"], case["provider_failures"], e.get("occurred_at"))
    _infer_joins(run, invoice_id)
    codes = _details_complete(run, invoice_id)
    tenure = run.state.get("customer_since") is None and run.state.get("customer_lookup") is None
    if run.ctx.fetch_details and (not codes or tenure):
        _request_details(run, invoice_id, codes=not codes, customer=tenure)
    if codes and not _awaiting_lookup(run, invoice_id):
        _classify_and_plan(run, invoice_id)
    else:  # the API read, a joined webhook or, at the last resort, this timer completes it
        run.timer(invoice_id, run.ctx.now + run.ctx.classify_wait, action="classify")


def _awaiting_lookup(run: _Run, invoice_id: str) -> bool:
    """This case asked for the customer's tenure and the answer is still out: planning waits for it (briefly)."""
    case = run.case(invoice_id)
    return (case is not None and run.state.get("customer_lookup") == "requested"
            and run.state.get("customer_lookup_for") == invoice_id
            and case.get("details_requested") == case["provider_failures"]
            and case.get("details_fetched") != case["provider_failures"])


def _request_details(run: _Run, invoice_id: str, *, codes: bool, customer: bool) -> None:
    """Ask the classifier pool to read what the deliveries lack, at most once per failure of the invoice."""
    case = run.case(invoice_id)
    assert case is not None
    failure_no = case["provider_failures"]
    if case.get("details_requested") == failure_no:
        return
    charge = case["charge_ids"][-1] if case["charge_ids"] else None
    fetch = DetailsFetch(invoice_id, failure_no, case["payment_intent_id"], charge, case["subscription_id"],
                         codes=codes, customer=customer)
    run.emit(DetailsRequested(invoice_id=invoice_id, failure_no=failure_no, codes=codes, customer=customer,
                              payment_intent_id=fetch.payment_intent_id, charge_id=charge, at=iso(run.ctx.now)))
    run.d.fetches.append(fetch)


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
    run.emit(DeclineDetailsReceived(
        link=f"{source}:{link or e.get('invoice_id')}", source=source, invoice_id=e.get("invoice_id"),
        payment_intent_id=e.get("payment_intent_id"), charge_id=e.get("charge_id"), decline=e["decline"],
        delivery_id=delivery_id, amount=e.get("amount_due"), currency=e.get("currency"),
        occurred_at=e.get("occurred_at"), payment_method_id=e.get("payment_method_id")))
    for case in list(run.state["cases"].values()):
        if case["state"] != CaseState.CLASSIFYING:
            continue
        _infer_joins(run, case["invoice_id"])
        if _details_complete(run, case["invoice_id"]) and not _awaiting_lookup(run, case["invoice_id"]):
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
    """A card update in any form (attached, set up, updated by the card updater, a new default)."""
    if _older_than_known_method(run, e):
        return
    _card_updated(run, e, delivery_id)


def _on_customer_updated(run: _Run, e: Json, delivery_id: int | None) -> None:
    """The customer as it is now: a default instrument other than the one we knew (or than the one that failed)
    is a card update, whether or not the provider listed it in `previous_attributes`."""
    method = e.get("payment_method_id")
    if _older_than_known_method(run, e):
        return
    known = run.state.get("payment_method_id")
    previous = e.get("previous_payment_method_id")
    failed = {c.get("payment_method_id") for c in run.state["cases"].values()
              if c["state"] not in TERMINAL and c.get("payment_method_id")}
    changed = method is not None and (
        (previous is not None and previous != method) or (known is not None and known != method)
        or (known is None and bool(failed) and method not in failed))
    if changed:
        _card_updated(run, e, delivery_id)
    elif method != known or (e.get("customer_since") and run.state.get("customer_since") is None):
        run.emit(PaymentMethodKnown(payment_method_id=method or known, occurred_at=e["occurred_at"],
                                    customer_since=e.get("customer_since")))


def _older_than_known_method(run: _Run, e: Json) -> bool:
    """An update older than the newest one applied (a reordered delivery) must not move the card back (I7)."""
    known_at = run.state.get("payment_method_at")
    if known_at and e.get("occurred_at") and _time(e["occurred_at"]) < _time(known_at):  # type: ignore[operator]
        run.emit(LateEventIgnored(event=e["provider_event_type"],
                                  reason=f"a newer payment method update ({known_at}) was already applied"))
        return True
    return False


def _card_updated(run: _Run, e: Json, delivery_id: int | None) -> None:
    via = e["provider_event_type"]
    run.emit(PaymentMethodUpdated(payment_method_id=e.get("payment_method_id"), delivery_id=delivery_id, via=via,
                                  previous=e.get("previous_payment_method_id"), occurred_at=e["occurred_at"],
                                  at=iso(run.ctx.now), customer_since=e.get("customer_since")))
    for case in list(run.state["cases"].values()):
        if case["state"] in (CaseState.AWAITING_CUSTOMER, CaseState.RETRY_SCHEDULED):
            _resume(run, case, f"the customer updated their payment method ({via})")


def _on_closed(run: _Run, e: Json, delivery_id: int | None) -> None:
    reason = {"invoice_voided": "voided", "invoice_uncollectible": "uncollectible"}[e["kind"]]
    case = run.case(e.get("invoice_id") or "")
    if case is not None and may(_model(case), "close"):
        run.emit(InvoiceClosed(invoice_id=case["invoice_id"], reason=reason))
        run.timer(case["invoice_id"], None)


def _on_subscription(run: _Run, e: Json, delivery_id: int | None) -> None:
    run.emit(SubscriptionChanged(subscription_id=e.get("subscription_id"), status=e.get("subscription_status"),
                                 customer_since=e.get("customer_since")))
    if e["kind"] != "subscription_deleted":
        return
    for case in list(run.state["cases"].values()):
        if case["subscription_id"] == e.get("subscription_id") and may(_model(case), "close"):
            run.emit(InvoiceClosed(invoice_id=case["invoice_id"], reason="subscription_deleted"))
            run.timer(case["invoice_id"], None)


_INBOUND = {
    "payment_failed": _on_payment_failed,
    "decline_details": _on_decline_details,
    "action_required": _on_action_required,
    "payment_succeeded": _on_payment_succeeded,
    "payment_method_updated": _on_payment_method_updated,
    "customer_updated": _on_customer_updated,
    "invoice_voided": _on_closed,
    "invoice_uncollectible": _on_closed,
    "subscription_updated": _on_subscription,
    "subscription_deleted": _on_subscription,
}


# ---------------------------------------------------------------------------------------------- API reads

def decide_details_fetched(state: Json, invoice_id: str, result: Json, ctx: Context) -> Decision:
    """The classifier pool read the provider API for a failure (see `DetailsFetch`).

    `result`: `failure_no`, `decline` (DeclineInfo as JSON, or None), `found_in` (what was read), `error` (why
    the read failed, or None), `customer_since` (ISO time, or None), `customer` (the customer was read),
    `payment_intent_id`, `charge_id`. The codes are recorded with their source; a case still waiting for them
    is classified now.
    """
    run = _Run(state, ctx)
    case = run.case(invoice_id)
    failure_no = int(result["failure_no"])
    if case is None or case.get("details_fetched") == failure_no:
        return run.d  # already answered (Ray may deliver a result twice)
    run.emit(DetailsFetched(invoice_id=invoice_id, failure_no=failure_no, found_in=result.get("found_in") or [],
                            error=result.get("error"), customer=bool(result.get("customer")),
                            customer_since=result.get("customer_since"), at=iso(ctx.now)))
    if result.get("decline"):
        run.emit(DeclineDetailsReceived(
            link=f"api:{invoice_id}:{failure_no}", source="api", invoice_id=invoice_id,
            payment_intent_id=result.get("payment_intent_id"), charge_id=result.get("charge_id"),
            decline=result["decline"], failure_no=failure_no, occurred_at=case.get("failed_occurred_at")))
    case = run.case(invoice_id)
    assert case is not None
    if case["state"] == CaseState.CLASSIFYING and case["provider_failures"] == failure_no and (
            _details_complete(run, invoice_id) or result.get("error") is None):
        _classify_and_plan(run, invoice_id)
    return run.d


# ---------------------------------------------------------------------------------------------- timers

def decide_timer(state: Json, invoice_id: str, payload: Json, ctx: Context) -> Decision:
    """A durable timer fired. A timer that no longer matches the case (stale) decides nothing."""
    run = _Run(state, ctx)
    case = run.case(invoice_id)
    if case is None or case["state"] in TERMINAL or case.get("paused"):
        return run.d  # a paused case (operator) gets its timer back when it is resumed
    action = payload.get("action")
    if action == "classify" and case["state"] == CaseState.CLASSIFYING:
        _unanswered(run, case)
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


def _unanswered(run: _Run, case: Json) -> None:
    """The classification deadline came before the API read's answer: say so in the trail, and let a later failure
    ask for the customer again (the answer, if it ever comes, then changes nothing)."""
    failure_no = case["provider_failures"]
    if case.get("details_requested") == failure_no and case.get("details_fetched") != failure_no:
        lookup = run.state.get("customer_lookup_for") == case["invoice_id"]
        run.emit(DetailsFetched(invoice_id=case["invoice_id"], failure_no=failure_no, found_in=[],
                                error="no answer before the classification deadline", unanswered=True,
                                customer=lookup and run.state.get("customer_lookup") == "requested",
                                customer_since=None, at=iso(run.ctx.now)))


def _pause(run: _Run, case: Json, attempt_no: int) -> None:
    """An incident is open for this provider: hold the retry. Each case rechecks at its own offset within the
    recheck period, so the catch-up after the incident clears is paced, not a thundering herd."""
    period = run.ctx.pause_recheck.total_seconds()
    offset = zlib.crc32(case["invoice_id"].encode()) % max(1, int(period))
    at = run.ctx.now + run.ctx.pause_recheck + timedelta(seconds=offset)
    run.emit(RetryPaused(invoice_id=case["invoice_id"], action="retry", at=iso(at), attempt_no=attempt_no,
                         max_attempts=case["max_attempts"], strategy=case["strategy"],
                         explanation=f"retry held: an incident is open for {run.ctx.provider}; "
                                     f"rechecking at {at:%a %H:%M} UTC"))
    run.timer(case["invoice_id"], at, action="retry", attempt_no=attempt_no)


def _start_attempt(run: _Run, case: Json, attempt_no: int) -> None:
    if not may(_model(case), "begin_attempt"):
        _final(run, case, "no attempts left")
        return
    key = attempt_key(run.state["tenant_id"], case["invoice_id"], attempt_no)
    run.emit(AttemptStarted(invoice_id=case["invoice_id"], attempt_no=attempt_no, idempotency_key=key,
                            at=iso(run.ctx.now), payment_method_id=case.get("retry_payment_method"),
                            reconcile_at=iso(run.ctx.now + run.ctx.reconcile_after)))
    started = run.case(case["invoice_id"])
    assert started is not None
    run.d.charges.append(_charge(run, started, attempt_no, key))
    run.timer(case["invoice_id"], run.ctx.now + run.ctx.reconcile_after, action="reconcile",
              attempt_no=attempt_no)


def _charge(run: _Run, case: Json, attempt_no: int, key: str) -> ChargeRequest:
    """The same key always goes out with the same instrument (a reconcile re-sends exactly the first request)."""
    return ChargeRequest(case["invoice_id"], attempt_no, key, case["amount_due"], case["currency"], case["card"],
                         payment_method_id=case.get("inflight_payment_method"),
                         stored_payment_method_id=case.get("payment_method_id"),
                         subscription_id=case["subscription_id"])


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
        run.emit(AttemptSucceeded(invoice_id=invoice_id, attempt_no=attempt_no, idempotency_key=key))
        _recover(run, case, via="retry", amount=case["amount_due"])
    elif outcome == "failed":
        _attempt_failed(run, case, attempt_no, decline or {})
    else:
        run.emit(AttemptUnknown(invoice_id=invoice_id, attempt_no=attempt_no, idempotency_key=key,
                                reason=(decline or {}).get("message")))
    return run.d


def _attempt_failed(run: _Run, case: Json, attempt_no: int, decline: Json) -> None:
    run.emit(AttemptFailed(invoice_id=case["invoice_id"], attempt_no=attempt_no,
                           idempotency_key=case["inflight_key"], decline=decline))
    _classify_and_plan(run, case["invoice_id"], decline_override=decline)


def _is_our_attempt(case: Json, e: Json) -> bool:
    key = e.get("request_idempotency_key")
    return bool(key) and key in case["attempt_keys"]


def _our_attempt_reported(run: _Run, case: Json, e: Json, *, succeeded: bool) -> None:
    """The provider's webhook about our own attempt: settles it if still in flight, else only confirms."""
    key = e["request_idempotency_key"]
    if case["inflight_key"] != key:
        run.emit(LateEventIgnored(invoice_id=case["invoice_id"], event=e["provider_event_type"],
                                  reason=f"webhook for our attempt {key}, already recorded"))
        return
    attempt_no = int(key.rsplit(":", 1)[1])
    if succeeded:
        run.emit(AttemptSucceeded(invoice_id=case["invoice_id"], attempt_no=attempt_no, idempotency_key=key))
        _recover(run, case, via="retry", amount=e.get("amount_paid") or case["amount_due"])
    else:
        _attempt_failed(run, case, attempt_no, e.get("decline") or _known_decline(run, case))


# ---------------------------------------------------------------------------------------------- classification

def _record_decline(run: _Run, source: str, invoice_id: str, decline: Json, failure_no: int,
                    occurred_at: str | None) -> None:
    run.emit(DeclineDetailsReceived(link=f"{source}:{invoice_id}:{failure_no}", source=source, invoice_id=invoice_id,
                                    decline=decline, failure_no=failure_no, occurred_at=occurred_at))


def _matching_declines(run: _Run, invoice_id: str) -> list[tuple[str, Json]]:
    """Decline records of this invoice's latest failure: joined by invoice, payment intent or charge id (or an
    inferred join), oldest first. Records of the invoice's own earlier failures are left out."""
    case = run.case(invoice_id) or {}
    pi, charges = case.get("payment_intent_id"), set(case.get("charge_ids", []))
    failure_no = case.get("provider_failures")
    found = [(link, r) for link, r in run.state["declines"].items()
             if (r.get("invoice_id") == invoice_id or (pi and r.get("payment_intent_id") == pi)
                 or (r.get("charge_id") in charges))
             and r.get("failure_no") in (None, failure_no)]
    return sorted(found, key=lambda item: (item[1].get("occurred_at") or "", item[0]))


def _details_complete(run: _Run, invoice_id: str) -> bool:
    """The codes are known: on the invoice event, from the API, from both decline events, or from one decline
    event whose codes the classifier recognises (waiting for the other would add nothing)."""
    records = [r for _, r in _matching_declines(run, invoice_id)]
    sources = {r["source"] for r in records}
    if sources & {"invoice", "api"} or {"charge", "payment_intent"} <= sources:
        return True
    if not records:
        return False
    return not run.ctx.classify(run.ctx.provider, _merged([r["decline"] for r in records])).get("unknown")


def _infer_joins(run: _Run, invoice_id: str) -> None:
    """Current API versions link an invoice to its charge only through the API. Without it, decline details of
    the same customer with the invoice's amount and currency, within `join_window` of the failure and linked to
    no other invoice, belong to it: the nearest in time, with the records sharing its payment intent or charge.
    The join is recorded (`DeclineJoined`, how=inferred) so the classification says where its codes came from."""
    case = run.case(invoice_id)
    if case is None or case["state"] != CaseState.CLASSIFYING or _matching_declines(run, invoice_id):
        return
    failed_at = _time(case.get("failed_occurred_at"))
    if failed_at is None or not case.get("amount_due"):
        return
    claimed = _claimed_links(run, invoice_id)
    candidates = []
    for link, record in run.state["declines"].items():
        at = _time(record.get("occurred_at"))
        if (record.get("invoice_id") or link in claimed or at is None or record.get("source") == "api"
                or record.get("amount") != case["amount_due"] or record.get("currency") != case["currency"]
                or abs(at - failed_at) > run.ctx.join_window):
            continue
        candidates.append((abs(at - failed_at), link, record))
    if not candidates:
        return
    nearest = min(candidates, key=lambda c: (c[0], c[1]))[2]
    ids = {nearest.get("payment_intent_id"), nearest.get("charge_id")} - {None}
    for gap, link, record in sorted(candidates, key=lambda c: (c[0], c[1])):
        if record is nearest or ids & {record.get("payment_intent_id"), record.get("charge_id")}:
            run.emit(DeclineJoined(
                invoice_id=invoice_id, link=link, how="inferred",
                reason=f"same customer, amount {case['amount_due']} {case['currency']}, "
                       f"{int(gap.total_seconds())} s from the invoice failure"))


def _claimed_links(run: _Run, invoice_id: str) -> set[str]:
    """Records another open invoice already owns by its payment intent or charge id."""
    claimed: set[str] = set()
    for other in run.state["cases"].values():
        if other["invoice_id"] == invoice_id:
            continue
        pi, charges = other.get("payment_intent_id"), set(other.get("charge_ids", []))
        claimed |= {link for link, r in run.state["declines"].items()
                    if (pi and r.get("payment_intent_id") == pi) or r.get("charge_id") in charges}
    return claimed


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _merged(declines: list[Json]) -> Json:
    merged: Json = {}
    for decline in declines:
        merged.update({k: v for k, v in decline.items() if v is not None})
    return merged


def _known_decline(run: _Run, case: Json) -> Json:
    return _merged([r["decline"] for _, r in _matching_declines(run, case["invoice_id"])])


def _details_sources(run: _Run, case: Json) -> list[Json]:
    """Where the codes of a classification came from, for the trail (FailureClassified)."""
    return [{"link": link, "source": r["source"], "joined": r.get("joined") or ("id" if r["source"] in (
        "charge", "payment_intent") else None)} for link, r in _matching_declines(run, case["invoice_id"])]


#: what an invoice failure with `charge: null` and no codes means: nothing was charged because the payment needs
#: the customer (authentication, or no usable payment method) — never something an automatic retry fixes
_NO_CHARGE_DECLINE: Json = {"error_code": "invoice_payment_intent_requires_action"}


def _classify_and_plan(run: _Run, invoice_id: str, decline_override: Json | None = None) -> None:
    case = run.case(invoice_id)
    assert case is not None
    sources = [] if decline_override is not None else _details_sources(run, case)
    decline = decline_override if decline_override is not None else _known_decline(run, case)
    if decline_override is None and not decline and case.get("charge_less"):
        decline, sources = dict(_NO_CHARGE_DECLINE), [{"source": "inferred", "link": None,
                                                        "joined": "the invoice failed with no charge made"}]
    if decline_override is not None:
        sources = [{"source": "attempt", "link": case.get("inflight_key"), "joined": "our own retry"}]
    classification = run.ctx.classify(run.ctx.provider, decline)
    card = {k: decline.get(k) for k in ("card_brand", "card_fingerprint", "card_country") if decline.get(k)}
    run.emit(FailureClassified(invoice_id=invoice_id, classification=classification, card=card,
                               at=iso(run.ctx.now), provider=run.ctx.provider,
                               details_from=sources or [{"source": "none", "link": None,
                                                         "joined": "no decline details arrived in time"}]))
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
    run.emit(UnknownCodeSeen(invoice_id=invoice_id, provider=run.ctx.provider, code=code,
                             handled_as=classification.get("category"),
                             table=f"{classification.get('table_id')} v{classification.get('table_version')}"))
    run.notify("alert", f"alert:{tenant}:unknown-code:{run.ctx.provider}:{code}", {
        "kind": "engineering", "title": f"unknown decline code: {code}",
        "text": f"{run.ctx.provider} sent {code}, which no classification row covers; it was handled as "
                f"{classification.get('category')} with a small attempt cap. Add a row to the table.",
        "severity": "warning", "fields": {"tenant": tenant, "provider": run.ctx.provider, "code": code}},
        invoice_id)


def _planned(cls: type[E], case: Json, plan: Plan, **extra: Any) -> E:
    """The event of `cls` recording `plan` for the case; `extra` adds or overrides fields."""
    fields: Json = {"invoice_id": case["invoice_id"], "action": plan.action, "at": iso(plan.at),
                    "attempt_no": plan.attempt_no, "max_attempts": plan.max_attempts,
                    "explanation": plan.explanation, "strategy": plan.strategy}
    return cls(**{**fields, **extra})


def _apply_plan(run: _Run, case: Json, plan: Plan) -> None:
    if run.ctx.retry_mode == "observe" and plan.action == "retry":
        run.emit(_planned(ShadowDecision, case, plan, shadow=True))
        deadline = (plan.at or run.ctx.now) + timedelta(days=30)
        run.emit(_planned(AwaitingCustomer, case, plan, action="observe", at=iso(deadline)))
        run.timer(case["invoice_id"], deadline, action="deadline")
        return
    apply = _PLAN_ACTIONS.get(plan.action, _apply_final)
    apply(run, case, plan)
    if plan.email_template:
        _email(run, case, plan.email_template, plan)
    if plan.alert:
        _alert(run, case, plan.alert, plan)


def _apply_retry(run: _Run, case: Json, plan: Plan) -> None:
    scheduled = _planned(RetryScheduled, case, plan, retryable=True)
    if not may(CaseModel(case["state"], True, case["attempts_made"], plan.max_attempts), "schedule_retry"):
        _final(run, case, f"no attempts left ({case['attempts_made']} of {plan.max_attempts})")
        return
    run.emit(scheduled)
    run.timer(case["invoice_id"], plan.at, action="retry", attempt_no=plan.attempt_no)


def _apply_await(run: _Run, case: Json, plan: Plan) -> None:
    run.emit(_planned(AwaitingCustomer, case, plan))
    run.timer(case["invoice_id"], plan.at, action="deadline")


def _apply_escalate(run: _Run, case: Json, plan: Plan) -> None:
    run.emit(_planned(Escalated, case, plan))
    run.timer(case["invoice_id"], plan.at or run.ctx.now + timedelta(hours=6), action="recheck")


def _apply_halt(run: _Run, case: Json, plan: Plan) -> None:
    run.emit(_planned(Halted, case, plan))
    run.timer(case["invoice_id"], None)


def _apply_final(run: _Run, case: Json, plan: Plan) -> None:
    run.emit(_planned(Exhausted, case, plan, action="final", final_action=plan.final_action))
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
    """A prompt retry on the card the customer just gave, counted against the network budget as usual."""
    at = run.ctx.now + run.ctx.resume_delay
    attempt_no = case["attempts_made"] + 1
    plan = Plan("retry", at, attempt_no, max(case["max_attempts"], attempt_no), f"prompt retry: {why}",
                case["strategy"] or {})
    if not may(CaseModel(case["state"], True, case["attempts_made"], plan.max_attempts), "schedule_retry"):
        return
    same_card = case.get("retry_payment_method") in (None, case.get("payment_method_id"))
    if same_card:  # the card updater refreshed the same card: its history still counts
        history = run.ctx.card_history.get(case["card"].get("card_fingerprint", ""), ())
        verdict = check_network_budget([*history], case["card"].get("card_brand"), None, None, at, NetworkLimits())
        if not verdict.allowed and verdict.earliest_at is None:
            return
        if not verdict.allowed and verdict.earliest_at is not None:
            at = verdict.earliest_at
            plan = Plan("retry", at, attempt_no, plan.max_attempts, f"{plan.explanation}; {verdict.reason}",
                        plan.strategy)
    if run.ctx.retry_mode == "observe":
        run.emit(_planned(ShadowDecision, case, plan, shadow=True))
        return
    run.emit(_planned(RetryScheduled, case, plan, retryable=True, resume_reason="card_update"))
    run.timer(case["invoice_id"], at, action="retry", attempt_no=plan.attempt_no)


def _recover(run: _Run, case: Json, *, via: str, amount: int | None) -> None:
    """Credited to a card update when the customer gave a new card while the case was open."""
    credit = "card_update" if case.get("card_updated_at") else None
    run.emit(InvoiceRecovered(invoice_id=case["invoice_id"], via=via, at=iso(run.ctx.now),
                              amount=amount or case["amount_due"], currency=case["currency"], credited_to=credit))
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
        "timezone": _timezone(run.state, case), "branding": run.ctx.branding}, case["invoice_id"])


def _timezone(state: Json, case: Json) -> str | None:
    """The customer's time zone: what the business said, else the country's (profile, then the card's)."""
    profile = state.get("profile") or {}
    if profile.get("timezone"):
        return str(profile["timezone"])
    country = profile.get("country") or case["card"].get("card_country")
    return default_countries().of(country).timezone if country else None


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
