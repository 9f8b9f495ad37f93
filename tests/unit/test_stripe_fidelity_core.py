"""Stripe as it really sends it, through the parser and the pure core (no Ray, no database).

Every scenario starts from Stripe-shaped JSON in a given API version, normalized by the real parser, decided with
the real classification tables and the real strategy planner.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from actors.domain.case import empty_state, evolve
from actors.domain.classification import classify, default_tables
from actors.domain.decide import decide_details_fetched, decide_inbound, decide_timer
from actors.domain.decisions import Context, Decision
from actors.domain.inbound import DeclineInfo
from actors.domain.strategy_planner import StrategyPlanner
from gateway.providers.stripe.envelope import parse_envelope
from gateway.providers.stripe.events import normalize

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CUS = "cus_fid"
TABLES = default_tables()
PLANNER = StrategyPlanner()
CURRENT, MIDDLE, OLDEST = "2026-06-24.dahlia", "2020-08-27", "2017-08-15"


def classify_json(provider: str, decline: dict[str, Any]) -> dict[str, Any]:
    info = DeclineInfo(**{k: v for k, v in decline.items() if k in DeclineInfo.model_fields})
    return classify(provider, info, TABLES).model_dump(mode="json")  # type: ignore[no-any-return]


def ctx(now: datetime = T0, **kw: Any) -> Context:
    return Context(now=now, classify=classify_json, planner=PLANNER, **kw)


def event(event_type: str, obj: dict[str, Any], *, version: str = CURRENT, at: datetime = T0,
          event_id: str | None = None, previous: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    body = {"id": event_id or f"evt_{event_type}_{int(at.timestamp())}", "object": "event", "type": event_type,
            "created": int(at.timestamp()), "api_version": version, "data": data,
            "request": {"id": None, "idempotency_key": None}}
    return [e.model_dump(mode="json") for e in normalize(parse_envelope(orjson.dumps(body)))]


def invoice(version: str, *, inv: str = "in_fid", amount: int = 2500, pi: str | None = "pi_fid",
            charge: Any = "ch_fid") -> dict[str, Any]:
    obj: dict[str, Any] = {"id": inv, "object": "invoice", "customer": CUS, "amount_due": amount, "amount_paid": 0,
                           "currency": "eur", "attempt_count": 1, "next_payment_attempt": None,
                           "billing_reason": "subscription_cycle", "customer_email": "ada@example.com",
                           "hosted_invoice_url": f"https://invoice.example/{inv}"}
    if version >= "2025-03-31":
        obj.update({"status": "open", "parent": {"subscription_details": {"subscription": "sub_fid"}}})
    elif version >= "2018-11-08":
        obj.update({"status": "open", "subscription": "sub_fid", "payment_intent": pi, "charge": charge,
                    "paid": False})
    else:
        obj.update({"subscription": "sub_fid", "charge": charge, "paid": False, "closed": False})
    return obj


def charge(version: str, *, code: str = "insufficient_funds", amount: int = 2500, ch: str = "ch_fid",
           pi: str | None = "pi_fid", inv: str = "in_fid") -> dict[str, Any]:
    obj: dict[str, Any] = {"id": ch, "object": "charge", "customer": CUS, "amount": amount, "currency": "eur",
                           "payment_intent": pi, "payment_method": "pm_old", "failure_code": "card_declined",
                           "failure_message": "Your card was declined.",
                           "outcome": {"type": "issuer_declined", "reason": code,
                                       "network_status": "declined_by_network"},
                           "payment_method_details": {"type": "card", "card": {
                               "brand": "visa", "fingerprint": "fp_fid", "country": "DE"}}}
    if version < "2025-03-31":
        obj["invoice"] = inv
    return obj


def apply(state: dict[str, Any], events: list[dict[str, Any]], context: Context) -> tuple[dict[str, Any], Decision]:
    decision = Decision(state=state)
    for e in events:
        made = decide_inbound(state, e, context)
        state = made.state
        decision.events += made.events
        decision.timers += made.timers
        decision.outbox += made.outbox
        decision.charges += made.charges
        decision.fetches += made.fetches
    decision.state = state
    return state, decision


def names(decision: Decision) -> list[str]:
    return [name for name, _ in decision.events]


def payload(decision: Decision, name: str) -> dict[str, Any]:
    return next(p for n, p in decision.events if n == name)


def with_tenure(state: dict[str, Any] | None = None) -> dict[str, Any]:
    return evolve(state or empty_state("default", CUS), "PaymentMethodKnown", {
        "payment_method_id": "pm_old", "occurred_at": (T0 - timedelta(days=400)).isoformat(),
        "customer_since": (T0 - timedelta(days=400)).isoformat()})


# ------------------------------------------------------------------------------------- joins, every version


@pytest.mark.parametrize("version", [OLDEST, MIDDLE, CURRENT])
@pytest.mark.parametrize("invoice_first", [True, False])
def test_an_invoice_failure_and_its_charge_failure_classify_at_once_in_every_version(
        version: str, invoice_first: bool) -> None:
    pi = None if version == OLDEST else "pi_fid"
    inv_events = event("invoice.payment_failed", invoice(version, pi=pi), version=version)
    ch_events = event("charge.failed", charge(version, pi=pi), version=version, at=T0 + timedelta(seconds=2))
    order = inv_events + ch_events if invoice_first else ch_events + inv_events
    state, decision = apply(with_tenure(), order, ctx())
    case = state["cases"]["in_fid"]
    assert case["state"] == "retry_scheduled"
    assert case["classification"]["category"] == "SOFT_DECLINE"
    sources = payload(decision, "FailureClassified")["details_from"]
    assert [s["source"] for s in sources] == ["charge"]
    assert sources[0]["joined"] == ("inferred" if version == CURRENT else "id")
    assert ("DeclineJoined" in names(decision)) == (version == CURRENT)


def test_the_inferred_join_needs_the_same_amount_and_currency_within_the_window() -> None:
    other_amount = event("charge.failed", charge(CURRENT, amount=999), at=T0 + timedelta(seconds=1))
    late = event("charge.failed", charge(CURRENT, ch="ch_late", pi="pi_late"), at=T0 + timedelta(minutes=30))
    state, decision = apply(with_tenure(), [*event("invoice.payment_failed", invoice(CURRENT)), *other_amount,
                                            *late], ctx())
    assert state["cases"]["in_fid"]["state"] == "classifying"
    assert "DeclineJoined" not in names(decision)
    assert decision.timers[-1].payload == {"action": "classify"}  # the last resort stays armed


def test_details_already_claimed_by_another_invoice_are_not_joined_twice() -> None:
    first = event("invoice.payment_failed", invoice(MIDDLE, inv="in_a", pi="pi_a", charge="ch_a"), version=MIDDLE)
    ch = event("charge.failed", charge(MIDDLE, ch="ch_a", pi="pi_a", inv="in_a"), version=MIDDLE)
    second = event("invoice.payment_failed", invoice(CURRENT, inv="in_b"), at=T0 + timedelta(seconds=5),
                   event_id="evt_b")
    state, decision = apply(with_tenure(), [*first, *ch, *second], ctx())
    assert state["cases"]["in_a"]["state"] == "retry_scheduled"
    assert state["cases"]["in_b"]["state"] == "classifying"


def test_an_expanded_charge_on_the_invoice_classifies_without_waiting() -> None:
    inv = invoice(MIDDLE, charge=charge(MIDDLE, code="expired_card"))
    state, decision = apply(with_tenure(), event("invoice.payment_failed", inv, version=MIDDLE), ctx())
    case = state["cases"]["in_fid"]
    assert case["state"] == "awaiting_customer"
    assert case["classification"]["category"] == "HARD_DECLINE"
    assert [o.payload["template"] for o in decision.outbox if o.topic == "email"] == ["action_required"]
    assert not decision.charges and not [t for t in decision.timers if t.payload.get("action") == "retry"]


def test_a_charge_declined_with_no_invoice_failure_opens_no_case() -> None:
    for version in (OLDEST, MIDDLE, CURRENT):
        state, _ = apply(empty_state("default", CUS), event("charge.failed", charge(version), version=version), ctx())
        assert state["cases"] == {}


# ------------------------------------------------------------------------------------- the provider API


def test_missing_codes_are_fetched_once_and_an_sca_failure_is_never_retried() -> None:
    inv = invoice(MIDDLE, charge=None)  # an SCA failure: no charge was ever made
    state, decision = apply(with_tenure(), event("invoice.payment_failed", inv, version=MIDDLE),
                            ctx(fetch_details=True))
    (fetch,) = decision.fetches
    assert (fetch.payment_intent_id, fetch.codes, fetch.customer) == ("pi_fid", True, False)
    assert state["cases"]["in_fid"]["state"] == "classifying"
    # decline events that add nothing, and the last-resort timer, never ask for a second read of this failure
    _, again = apply(state, event("charge.failed", charge(MIDDLE, ch="ch_x", pi="pi_x", inv="in_x", amount=1)),
                     ctx(fetch_details=True))
    assert again.fetches == []
    assert decide_timer(state, "in_fid", {"action": "classify"}, ctx(T0 + timedelta(minutes=2),
                                                                      fetch_details=True)).fetches == []
    result = {"failure_no": 1, "decline": {"error_type": "invalid_request_error",
                                           "error_code": "payment_intent_authentication_failure"},
              "found_in": ["payment_intent pi_fid"], "error": None, "payment_intent_id": "pi_fid"}
    done = decide_details_fetched(state, "in_fid", result, ctx(T0 + timedelta(seconds=1)))
    case = done.state["cases"]["in_fid"]
    assert case["classification"]["category"] == "AUTHENTICATION_REQUIRED"
    assert case["state"] == "awaiting_customer"
    assert payload(done, "FailureClassified")["details_from"][0]["source"] == "api"
    emails = [o.payload for o in done.outbox if o.topic == "email"]
    assert [e["template"] for e in emails] == ["action_required"]
    assert emails[0]["hosted_invoice_url"] == "https://invoice.example/in_fid"
    assert not done.charges and not [t for t in done.timers if t.payload.get("action") == "retry"]
    # a second answer for the same failure (Ray may deliver twice) changes nothing
    assert decide_details_fetched(done.state, "in_fid", result, ctx()).events == []


def test_without_a_key_a_charge_less_failure_is_never_retried_at_the_last_resort() -> None:
    state, _ = apply(with_tenure(), event("invoice.payment_failed", invoice(MIDDLE, charge=None), version=MIDDLE),
                     ctx())
    fired = decide_timer(state, "in_fid", {"action": "classify"}, ctx(T0 + timedelta(minutes=2)))
    case = fired.state["cases"]["in_fid"]
    assert case["classification"]["category"] == "AUTHENTICATION_REQUIRED"
    assert case["state"] == "awaiting_customer"
    assert payload(fired, "FailureClassified")["details_from"][0]["source"] == "inferred"


def test_unknown_tenure_is_read_once_through_the_api_and_used() -> None:
    inv = invoice(MIDDLE, charge=charge(MIDDLE))
    state, decision = apply(empty_state("default", CUS), event("invoice.payment_failed", inv, version=MIDDLE),
                            ctx(fetch_details=True))
    (fetch,) = decision.fetches
    assert (fetch.codes, fetch.customer) == (False, True)
    assert state["cases"]["in_fid"]["state"] == "classifying"  # waits for the read, not for the timer
    since = (T0 - timedelta(days=700)).isoformat()
    done = decide_details_fetched(state, "in_fid", {"failure_no": 1, "decline": None, "found_in": ["customer"],
                                                    "error": None, "customer": True, "customer_since": since}, ctx())
    assert done.state["customer_since"] == since
    assert done.state["cases"]["in_fid"]["state"] == "retry_scheduled"
    # a later failure of the same customer does not read the customer again
    _, later = apply(done.state, event("invoice.payment_failed", invoice(MIDDLE, inv="in_2", charge=charge(
        MIDDLE, ch="ch_2", inv="in_2")), version=MIDDLE, event_id="evt_2"), ctx(fetch_details=True))
    assert later.fetches == []


# ------------------------------------------------------------------------------------- card updates


def failed_and_scheduled(version: str = MIDDLE) -> dict[str, Any]:
    state, _ = apply(with_tenure(), [*event("invoice.payment_failed", invoice(version), version=version),
                                     *event("charge.failed", charge(version), version=version)], ctx())
    assert state["cases"]["in_fid"]["state"] == "retry_scheduled"
    return state


def customer(default_pm: str | None = "pm_new", default_source: str | None = None) -> dict[str, Any]:
    return {"id": CUS, "object": "customer", "email": "ada@example.com", "created": int(T0.timestamp()) - 86400 * 400,
            "invoice_settings": {"default_payment_method": default_pm}, "default_source": default_source}


@pytest.mark.parametrize("version", [OLDEST, MIDDLE, CURRENT])
def test_a_customer_update_without_previous_attributes_retries_promptly_on_the_new_card(version: str) -> None:
    state = failed_and_scheduled()
    at = T0 + timedelta(hours=2)
    obj = customer(None, "card_new") if version == OLDEST else customer("pm_new")
    state, decision = apply(state, event("customer.updated", obj, version=version, at=at), ctx(at))
    scheduled = payload(decision, "RetryScheduled")
    assert scheduled["resume_reason"] == "card_update"
    assert decision.timers[-1].due_at == at + timedelta(minutes=1)
    fired = decide_timer(state, "in_fid", decision.timers[-1].payload, ctx(at + timedelta(minutes=1)))
    (request,) = fired.charges
    assert request.payment_method_id == ("card_new" if version == OLDEST else "pm_new")
    paid = fired.state
    paid = decide_inbound(paid, event("invoice.paid", {**invoice(version), "amount_paid": 2500}, version=version,
                                      at=at + timedelta(minutes=2))[0], ctx(at + timedelta(minutes=2))).state
    assert paid["cases"]["in_fid"]["recovered_credit"] == "card_update"


def test_the_same_default_again_is_not_a_card_update() -> None:
    state = failed_and_scheduled()
    obj = customer("pm_old")
    _, decision = apply(state, event("customer.updated", obj, at=T0 + timedelta(hours=1)), ctx())
    assert "RetryScheduled" not in names(decision) and "PaymentMethodUpdated" not in names(decision)


def test_an_update_older_than_the_newest_applied_never_moves_the_card_back() -> None:
    state = failed_and_scheduled()
    newer = event("customer.updated", customer("pm_new"), at=T0 + timedelta(hours=2), event_id="evt_new")
    state, _ = apply(state, newer, ctx(T0 + timedelta(hours=2)))
    older = event("customer.updated", customer("pm_between"), at=T0 + timedelta(hours=1), event_id="evt_old")
    state, decision = apply(state, older, ctx(T0 + timedelta(hours=2)))
    assert names(decision) == ["LateEventIgnored"]
    assert state["payment_method_id"] == "pm_new"


@pytest.mark.parametrize(("event_type", "obj"), [
    ("payment_method.automatically_updated", {"id": "pm_old", "object": "payment_method", "customer": CUS}),
    ("payment_method.attached", {"id": "pm_new", "object": "payment_method", "customer": CUS}),
    ("customer.source.updated", {"id": "card_1", "object": "card", "customer": CUS}),
    ("setup_intent.succeeded", {"id": "seti_1", "object": "setup_intent", "customer": CUS,
                                "payment_method": "pm_new", "status": "succeeded"}),
])
def test_every_form_of_card_update_resumes_a_scheduled_retry(event_type: str, obj: dict[str, Any]) -> None:
    state = failed_and_scheduled()
    _, decision = apply(state, event(event_type, obj, at=T0 + timedelta(hours=1)), ctx(T0 + timedelta(hours=1)))
    assert payload(decision, "RetryScheduled")["resume_reason"] == "card_update"


# ------------------------------------------------------------------------------------- observe mode, emails


def test_observe_mode_sends_nothing_to_the_customer_or_the_provider() -> None:
    inv = invoice(MIDDLE, charge=charge(MIDDLE, code="expired_card"))
    state, decision = apply(with_tenure(), event("invoice.payment_failed", inv, version=MIDDLE),
                            ctx(retry_mode="observe"))
    assert [o for o in decision.outbox if o.topic in ("email", "provider")] == []
    assert "ShadowDecision" in names(decision)
    deadline = state["cases"]["in_fid"]["next_action"]["at"]
    final = decide_timer(state, "in_fid", {"action": "deadline"}, ctx(datetime.fromisoformat(deadline),
                                                                          retry_mode="observe"))
    assert [o for o in final.outbox if o.topic in ("email", "provider")] == []
    assert final.charges == []


def test_emails_carry_the_customer_time_zone() -> None:
    inv = invoice(MIDDLE, charge=charge(MIDDLE, code="expired_card"))
    _, decision = apply(with_tenure(), event("invoice.payment_failed", inv, version=MIDDLE), ctx())
    (email,) = [o.payload for o in decision.outbox if o.topic == "email"]
    assert email["timezone"] == "Europe/Berlin"  # the card's country, DE


def test_a_lost_api_read_delays_only_its_own_failure_and_is_asked_again_later() -> None:
    inv = invoice(MIDDLE, charge=charge(MIDDLE))
    state, decision = apply(empty_state("default", CUS), event("invoice.payment_failed", inv, version=MIDDLE),
                            ctx(fetch_details=True))
    assert decision.fetches and state["customer_lookup"] == "requested"
    # a second invoice of the same customer, codes complete, does not wait for the first one's read
    other = invoice(MIDDLE, inv="in_2", charge=charge(MIDDLE, ch="ch_2", inv="in_2"))
    state, _ = apply(state, event("invoice.payment_failed", other, version=MIDDLE, event_id="evt_2"),
                     ctx(fetch_details=True))
    assert state["cases"]["in_2"]["state"] == "retry_scheduled"
    # the read never answers: the deadline classifies, records it, and frees the lookup for a later failure
    fired = decide_timer(state, "in_fid", {"action": "classify"}, ctx(T0 + timedelta(minutes=2)))
    assert payload(fired, "DetailsFetched")["unanswered"] is True
    assert fired.state["customer_lookup"] is None and fired.state["cases"]["in_fid"]["state"] == "retry_scheduled"
    late = decide_details_fetched(fired.state, "in_fid", {"failure_no": 1, "decline": None, "found_in": ["customer"],
                                                          "error": None, "customer": True}, ctx())
    assert late.events == []  # the answer after the deadline changes nothing
