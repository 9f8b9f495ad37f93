"""Typed domain events: the registry, the stored JSON they dump to, and a fold that refuses what it does not know."""

from __future__ import annotations

import json
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import orjson
import pytest
from pydantic import ValidationError

from actors.domain.case import FOLDS, RECORDED_ONLY, apply, empty_state, evolve
from actors.domain.events import (
    CUSTOMER_EVENT_TYPES,
    EVENT_TYPES,
    MONITOR_EVENT_TYPES,
    DomainEvent,
    InvalidEventError,
    LateEventIgnored,
    PaymentFailed,
    ShadowDecision,
    UnknownEventError,
    dump_event,
    make_event,
    parse_event,
)
from actors.domain.machine import TRANSITIONS, Trigger
from actors.domain.spikes import Spike
from actors.domain.state import CaseJson, CustomerJson, new_case

RECORDED = Path(__file__).parent / "fixtures" / "events" / "recorded_streams.json"


def sample(annotation: Any) -> Any:
    """A JSON value of the field's type (the first non-None member of a union)."""
    if get_origin(annotation) in (Union, types.UnionType):
        return sample(next(a for a in get_args(annotation) if a is not type(None)))
    if get_origin(annotation) is list:
        return [sample(get_args(annotation)[0])]
    return {str: "x", int: 7, bool: True, float: 1.5, dict: {"k": "v", "n": None}}[get_origin(annotation) or annotation]


def example(cls: type[DomainEvent], *, every_field: bool) -> dict[str, Any]:
    return {name: sample(f.annotation) for name, f in cls.model_fields.items() if every_field or f.is_required()}


@pytest.mark.parametrize("every_field", [False, True], ids=["required", "every-field"])
@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_registered_type_round_trips_through_its_stored_json(event_type: str, every_field: bool) -> None:
    payload = example(EVENT_TYPES[event_type], every_field=every_field)
    event = make_event(event_type, **payload)
    stored = orjson.loads(orjson.dumps(dump_event(event)[1]))  # what JSONB gives back
    assert dump_event(event) == (event_type, payload)
    assert stored == payload
    assert parse_event(event_type, stored) == event


def test_the_stored_type_is_the_class_name_and_the_registries_do_not_overlap() -> None:
    assert all(cls.event_type == name == cls.__name__ for name, cls in EVENT_TYPES.items())
    assert not set(CUSTOMER_EVENT_TYPES) & set(MONITOR_EVENT_TYPES)
    assert EVENT_TYPES == {**CUSTOMER_EVENT_TYPES, **MONITOR_EVENT_TYPES}


def test_every_customer_event_type_has_a_fold_entry_and_nothing_else_has_one() -> None:
    assert set(FOLDS) == set(CUSTOMER_EVENT_TYPES.values())


def test_the_triggers_the_fold_fires_are_the_ones_the_machine_declares() -> None:
    declared = {t["trigger"] for t in TRANSITIONS}
    assert set(get_args(Trigger)) == declared
    assert {fold.trigger for fold in FOLDS.values()} - {None} <= declared


def test_events_that_change_no_state_are_registered_as_recorded_only() -> None:
    recorded_only = {cls.event_type for cls, fold in FOLDS.items() if fold is RECORDED_ONLY}
    assert recorded_only == {"AttemptUnknown", "UnknownCodeSeen", "ShadowDecision", "LateEventIgnored"}


def test_a_fields_not_given_is_not_stored_and_a_none_given_is() -> None:
    event = LateEventIgnored(event="invoice.paid", reason="late")
    assert dump_event(event) == ("LateEventIgnored", {"event": "invoice.paid", "reason": "late"})
    failed = PaymentFailed(invoice_id="in_1", at="2026-03-02T09:00:00+00:00", charge_id=None)
    assert dump_event(failed)[1] == {"invoice_id": "in_1", "at": "2026-03-02T09:00:00+00:00", "charge_id": None}


def test_a_spike_as_the_monitor_records_it_is_a_spike_detected_event() -> None:
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    spike = Spike(provider="stripe", category="CONFIG_ERROR", bucket_start=start,
                  bucket_end=start + timedelta(minutes=5), count=9, baseline_mean=1.0, baseline_std=1.0, threshold=4.0)
    payload = spike.model_dump(mode="json")  # actors/monitor.py records exactly this
    assert dump_event(parse_event("SpikeDetected", payload)) == ("SpikeDetected", payload)


# ---------------------------------------------------------------------------------------------- emitting


def test_making_an_event_of_a_misspelled_type_fails_at_once() -> None:
    with pytest.raises(UnknownEventError, match="'PaymentFialed' is not a registered event type"):
        make_event("PaymentFialed", invoice_id="in_1", at="2026-03-02T09:00:00+00:00")


def test_making_an_event_without_a_required_field_fails_naming_the_field() -> None:
    with pytest.raises(InvalidEventError, match=r"InvoiceClosed: reason: Field required"):
        make_event("InvoiceClosed", invoice_id="in_1")
    with pytest.raises(ValidationError, match="at"):
        PaymentFailed(invoice_id="in_1")  # type: ignore[call-arg]


def test_making_an_event_with_a_misspelled_field_fails_naming_the_field() -> None:
    with pytest.raises(InvalidEventError, match="InvoiceClosed: reasn: Extra inputs are not permitted"):
        make_event("InvoiceClosed", invoice_id="in_1", reason="voided", reasn="voided")


def test_values_are_never_coerced_so_a_stored_value_folds_as_it_was_stored() -> None:
    with pytest.raises(InvalidEventError, match="attempt_no"):
        make_event("AttemptSucceeded", invoice_id="in_1", attempt_no=True, idempotency_key="k")
    with pytest.raises(InvalidEventError, match="amount_due"):
        make_event("PaymentFailed", invoice_id="in_1", at="2026-03-02T09:00:00+00:00", amount_due="2500")


def test_events_are_frozen() -> None:
    event = LateEventIgnored(event="invoice.paid", reason="late")
    with pytest.raises(ValidationError):
        event.reason = "changed"  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------- the fold


def test_an_unknown_type_in_a_log_is_an_error_naming_it_not_a_silent_no_op() -> None:
    state = empty_state("default", "cus_1")
    with pytest.raises(UnknownEventError, match="'RetryScheduld'"):
        evolve(state, "RetryScheduld", {"invoice_id": "in_1"})


def test_a_monitor_event_is_not_folded_into_a_customer() -> None:
    payload = example(EVENT_TYPES["IncidentOpened"], every_field=True)
    with pytest.raises(UnknownEventError, match="'IncidentOpened' is not an event of a customer's stream"):
        evolve(empty_state("default", "cus_1"), "IncidentOpened", payload)


def test_a_stored_payload_that_does_not_match_its_type_is_an_error() -> None:
    with pytest.raises(InvalidEventError, match="PaymentFailed: at: Field required"):
        evolve(empty_state("default", "cus_1"), "PaymentFailed", {"invoice_id": "in_1"})


def test_a_recorded_only_event_leaves_the_state_as_it_was() -> None:
    state = evolve(empty_state("default", "cus_1"), "PaymentFailed",
                   {"invoice_id": "in_1", "at": "2026-03-02T09:00:00+00:00"})
    shadow = ShadowDecision(invoice_id="in_1", action="email", explanation="observe mode", shadow=True)
    assert apply(state, shadow) == state
    assert apply(state, LateEventIgnored(invoice_id="in_1", event="invoice.payment_failed", reason="late")) == state


def test_folding_does_not_modify_its_input() -> None:
    state = empty_state("default", "cus_1")
    before = json.dumps(state, sort_keys=True)
    evolve(state, "PaymentFailed", {"invoice_id": "in_1", "at": "2026-03-02T09:00:00+00:00"})
    assert json.dumps(state, sort_keys=True) == before


def streams() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(RECORDED.read_text())["streams"]
    return found


@pytest.mark.parametrize("stream", streams(), ids=lambda s: f"{len(s['events'])}-events")
def test_streams_recorded_before_events_were_typed_still_fold_to_their_checkpoints(stream: dict[str, Any]) -> None:
    state = stream["start"]
    for event_type, payload in stream["events"]:
        state = evolve(state, event_type, payload)
        assert dump_event(parse_event(event_type, payload)) == (event_type, payload)  # stored JSON unchanged
    assert state == stream["end"]


@pytest.mark.parametrize("stream", streams(), ids=lambda s: f"{len(s['events'])}-events")
def test_no_fold_changes_an_earlier_state_that_a_later_one_shares(stream: dict[str, Any]) -> None:
    """`apply` shares the cases and containers an event does not change with the state before it: every state of a
    stream (each event type is in one of them) is still what it was when made, after the whole stream folded on."""
    states, snapshots = [stream["start"]], [json.dumps(stream["start"], sort_keys=True)]
    for event_type, payload in stream["events"]:
        states.append(evolve(states[-1], event_type, payload))
        snapshots.append(json.dumps(states[-1], sort_keys=True))
    assert [json.dumps(state, sort_keys=True) for state in states] == snapshots


def test_the_recorded_streams_hold_every_customer_event_type() -> None:
    recorded = {event_type for s in streams() for event_type, _ in s["events"]}
    assert recorded == set(CUSTOMER_EVENT_TYPES)


def test_a_checkpoint_has_the_keys_its_typed_shape_declares() -> None:
    case_keys = set(CaseJson.__required_keys__)
    customer_keys = set(CustomerJson.__required_keys__)
    assert set(new_case("in_1")) == case_keys
    assert set(empty_state("default", "cus_1")) == customer_keys
    for stream in streams():
        assert customer_keys <= set(stream["end"])
        for case in stream["end"]["cases"].values():
            assert case_keys <= set(case) <= case_keys | set(CaseJson.__optional_keys__)
