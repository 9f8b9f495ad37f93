"""Stripe events → canonical InboundEvents, in both invoice shapes (before and after API 2025-03-31)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from actors.domain.inbound import InboundEvent, InboundKind
from gateway.providers.stripe import (
    EVENT_TYPES,
    PayloadError,
    StripeEnvelope,
    customer_id_of,
    normalize,
    parse_envelope,
)

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"
CUS, SUB, INV = "cus_QXg1o8vcGmoR32", "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw", "in_1Pgc6tB7WZ01zgkWu9fdqL6I"
PI, CH, PM = "pi_1PgafyB7WZ01zgkWSjxsAJo3", "ch_1PgafuB7WZ01zgkWXYmPNZs8", "pm_1PgaftB7WZ01zgkWm3waTcFp"
CREATED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SHAPES = ["basil", "legacy"]
INVOICE_KINDS = {
    "invoice.payment_failed": InboundKind.PAYMENT_FAILED,
    "invoice.paid": InboundKind.PAYMENT_SUCCEEDED,
    "invoice.payment_succeeded": InboundKind.PAYMENT_SUCCEEDED,
    "invoice.payment_action_required": InboundKind.ACTION_REQUIRED,
    "invoice.voided": InboundKind.INVOICE_VOIDED,
    "invoice.marked_uncollectible": InboundKind.INVOICE_UNCOLLECTIBLE,
}


def raw(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def doc(name: str) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(raw(name))
    return parsed


def events_of(body: bytes | dict[str, Any]) -> list[InboundEvent]:
    """Normalized events of a body; dicts are serialized with the stdlib, which writes any integer."""
    return normalize(parse_envelope(body if isinstance(body, bytes) else json.dumps(body).encode()))


def only(body: bytes | dict[str, Any]) -> InboundEvent:
    (event,) = events_of(body)
    return event


def payload_error(body: dict[str, Any] | bytes) -> str:
    with pytest.raises(PayloadError) as caught:
        events_of(body)
    return caught.value.reason


def retyped(name: str, event_type: str) -> dict[str, Any]:
    event = doc(name)
    event["type"] = event_type
    return event


def in_api_version(name: str, shape: str) -> dict[str, Any]:
    event = doc(name)
    event["api_version"] = "2025-03-31.basil" if shape == "basil" else "2024-06-20"
    return event


# ---------------------------------------------------------------------------------------------- envelope


def test_the_envelope_keeps_id_type_time_version_and_our_idempotency_key() -> None:
    envelope = parse_envelope(raw("invoice.paid.basil"))
    assert (envelope.id, envelope.type, envelope.created) == (
        "evt_1Qx0003B7WZ01zgkW",
        "invoice.paid",
        1772442000,
    )
    assert envelope.api_version == "2025-03-31.basil"
    assert envelope.request_idempotency_key == "retry:in_1Pgc6tB7WZ01zgkWu9fdqL6I:2"
    assert envelope.obj["id"] == INV


def test_the_envelope_reads_previous_attributes_of_an_update() -> None:
    envelope = parse_envelope(raw("customer.subscription.updated"))
    assert envelope.previous_attributes == {"status": "active"}


def test_a_pre_2017_request_field_holding_a_bare_id_gives_no_idempotency_key() -> None:
    event = doc("invoice.paid.legacy")
    event["request"] = "req_8xKj3Lm2"
    assert only(event).request_idempotency_key is None


@pytest.mark.parametrize(
    ("name", "customer"),
    [
        ("invoice.payment_failed.basil", CUS),
        ("customer.updated.email", CUS),
        ("payment_method.attached", CUS),
    ],
)
def test_the_customer_is_read_cheaply_for_routing(name: str, customer: str) -> None:
    assert customer_id_of(parse_envelope(raw(name))) == customer


def test_an_expanded_customer_object_still_gives_its_id() -> None:
    event = doc("charge.failed.basil")
    event["data"]["object"]["customer"] = {"id": CUS, "object": "customer", "email": "j@example.com"}
    assert customer_id_of(parse_envelope(orjson.dumps(event))) == CUS


def test_a_charge_without_a_customer_routes_nowhere() -> None:
    event = doc("charge.failed.basil")
    event["data"]["object"]["customer"] = None
    assert customer_id_of(parse_envelope(orjson.dumps(event))) is None


# ---------------------------------------------------------------------------------------------- invoices


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("event_type", "kind"), INVOICE_KINDS.items())
def test_every_invoice_event_names_the_invoice_customer_and_subscription_in_both_shapes(
    event_type: str, kind: InboundKind, shape: str
) -> None:
    event = only(retyped(f"invoice.payment_failed.{shape}", event_type))
    assert (event.kind, event.provider, event.provider_event_type) == (kind, "stripe", event_type)
    assert (event.customer_id, event.invoice_id, event.subscription_id) == (CUS, INV, SUB)
    assert event.payment_intent_id == PI


def test_a_failed_invoice_carries_what_dunning_needs() -> None:
    event = only(raw("invoice.payment_failed.basil"))
    assert event.provider_event_id == "evt_1Qx0001B7WZ01zgkW"
    assert event.occurred_at == CREATED
    assert (event.amount_due, event.amount_paid, event.currency) == (2000, 0, "usd")
    assert event.attempt_count == 1
    assert event.next_payment_attempt == datetime(2026, 3, 5, 9, 0, tzinfo=UTC)
    assert event.billing_reason == "subscription_cycle"
    assert event.customer_email == "jenny.rosen@example.com"
    assert event.hosted_invoice_url == f"https://invoice.stripe.com/i/acct_1PgafT/test_{INV}"
    assert event.decline is None


def test_a_legacy_invoice_gives_its_top_level_charge() -> None:
    assert only(raw("invoice.payment_failed.legacy")).charge_id == CH


def test_a_basil_invoice_takes_the_latest_payment_not_the_first_default_one() -> None:
    event = only(raw("invoice.payment_failed.basil"))
    assert (event.payment_intent_id, event.charge_id) == (PI, None)


def test_a_basil_invoice_without_expanded_payments_has_no_payment_ids() -> None:
    event = doc("invoice.payment_failed.basil")
    del event["data"]["object"]["payments"]
    assert (only(event).payment_intent_id, only(event).charge_id) == (None, None)


def test_a_basil_payment_made_by_a_bare_charge_gives_the_charge() -> None:
    event = doc("invoice.payment_failed.basil")
    event["data"]["object"]["payments"]["data"][1]["payment"] = {"type": "charge", "charge": CH}
    assert (only(event).payment_intent_id, only(event).charge_id) == (None, CH)


def test_expanded_invoice_fields_give_their_ids() -> None:
    event = doc("invoice.payment_failed.legacy")
    invoice = event["data"]["object"]
    invoice["payment_intent"] = {"id": PI, "object": "payment_intent", "status": "requires_payment_method"}
    invoice["subscription"] = {"id": SUB, "object": "subscription", "status": "past_due"}
    assert (only(event).payment_intent_id, only(event).subscription_id) == (PI, SUB)


def test_an_expanded_charge_on_the_invoice_carries_its_decline_codes() -> None:
    event = doc("invoice.payment_failed.legacy")
    event["data"]["object"]["charge"] = {
        "id": CH, "object": "charge", "failure_code": "card_declined", "failure_message": "declined",
        "outcome": {"type": "issuer_declined", "reason": "expired_card", "network_status": "declined_by_network"},
        "payment_method_details": {"type": "card", "card": {"brand": "visa", "fingerprint": "fp1", "country": "DE"}}}
    parsed = only(event)
    assert parsed.charge_id == CH
    assert parsed.decline is not None
    assert (parsed.decline.error_code, parsed.decline.decline_code, parsed.decline.card_country) == (
        "card_declined", "expired_card", "DE")


def test_an_expanded_payment_intent_with_an_authentication_failure_carries_its_code() -> None:
    event = doc("invoice.payment_failed.legacy")
    invoice = event["data"]["object"]
    invoice["charge"] = None  # an SCA failure: no charge was ever made
    invoice["payment_intent"] = {"id": PI, "object": "payment_intent", "status": "requires_payment_method",
                                 "last_payment_error": {"type": "invalid_request_error",
                                                        "code": "payment_intent_authentication_failure"}}
    parsed = only(event)
    assert (parsed.charge_id, parsed.payment_intent_id) == (None, PI)
    assert parsed.decline is not None and parsed.decline.error_code == "payment_intent_authentication_failure"


def test_a_2017_invoice_names_its_charge_and_subscription() -> None:
    event = doc("invoice.payment_failed.legacy")
    invoice = event["data"]["object"]
    for field in ("payment_intent", "status", "collection_method"):
        invoice.pop(field, None)
    invoice.update({"billing": "charge_automatically", "closed": False, "forgiven": False})
    event["api_version"] = "2017-08-15"
    parsed = only(event)
    assert (parsed.charge_id, parsed.subscription_id, parsed.payment_intent_id) == (CH, SUB, None)


def test_a_sender_claiming_basil_but_sending_the_legacy_shape_is_still_read() -> None:
    event = doc("invoice.payment_failed.legacy")
    event["api_version"] = "2026-06-24.dahlia"
    assert (only(event).charge_id, only(event).subscription_id) == (CH, SUB)


@pytest.mark.parametrize("shape", SHAPES)
def test_a_paid_invoice_reports_the_amount_paid(shape: str) -> None:
    event = only(raw(f"invoice.paid.{shape}"))
    assert (event.kind, event.amount_paid, event.attempt_count) == (InboundKind.PAYMENT_SUCCEEDED, 2000, 2)
    assert event.next_payment_attempt is None


def test_our_own_retry_is_recognised_by_the_echoed_idempotency_key() -> None:
    assert only(raw("invoice.paid.basil")).request_idempotency_key == f"retry:{INV}:2"
    assert only(raw("invoice.paid.legacy")).request_idempotency_key is None


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("invoice.payment_action_required.basil", InboundKind.ACTION_REQUIRED),
        ("invoice.voided.legacy", InboundKind.INVOICE_VOIDED),
        ("invoice.marked_uncollectible.basil", InboundKind.INVOICE_UNCOLLECTIBLE),
    ],
)
def test_action_required_and_closing_invoice_events_map_to_their_kind(name: str, kind: InboundKind) -> None:
    event = only(raw(name))
    assert (event.kind, event.invoice_id, event.subscription_id) == (kind, INV, SUB)


# ---------------------------------------------------------------------------------------------- declines


def test_a_charge_failure_carries_the_issuer_decline_and_the_card() -> None:
    event = only(raw("charge.failed.basil"))
    assert (event.kind, event.charge_id, event.payment_intent_id) == (InboundKind.DECLINE_DETAILS, CH, PI)
    assert (event.invoice_id, event.payment_method_id, event.amount_due) == (None, PM, 2000)
    decline = event.decline
    assert decline is not None
    assert (decline.error_type, decline.error_code, decline.decline_code) == (
        "card_error",
        "card_declined",
        "insufficient_funds",
    )
    assert (decline.advice_code, decline.network_decline_code) == ("try_again_later", "51")
    assert (decline.outcome_type, decline.network_status, decline.risk_level) == (
        "issuer_declined",
        "declined_by_network",
        "normal",
    )
    assert (decline.card_brand, decline.card_fingerprint, decline.card_country) == (
        "visa",
        "AOB934RVNwzk6xtn",
        "US",
    )
    assert decline.message == "Your card has insufficient funds."


def test_a_legacy_charge_failure_names_its_invoice_and_the_hard_decline() -> None:
    event = only(raw("charge.failed.legacy"))
    assert event.invoice_id == INV
    assert event.decline is not None
    assert (event.decline.decline_code, event.decline.advice_code, event.decline.network_advice_code) == (
        "lost_card",
        "do_not_try_again",
        "03",
    )


def test_a_charge_stripe_blocked_has_no_issuer_decline_code_but_keeps_the_block_reason() -> None:
    decline = only(raw("charge.failed.blocked")).decline
    assert decline is not None
    assert decline.decline_code is None
    assert (decline.outcome_type, decline.outcome_reason, decline.network_status) == (
        "blocked",
        "previously_declined_do_not_retry",
        "not_sent_to_network",
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_a_payment_intent_failure_carries_the_last_payment_error(shape: str) -> None:
    event = only(raw(f"payment_intent.payment_failed.{shape}"))
    assert (event.kind, event.payment_intent_id, event.charge_id) == (InboundKind.DECLINE_DETAILS, PI, CH)
    assert (event.payment_method_id, event.invoice_id) == (PM, INV if shape == "legacy" else None)
    decline = event.decline
    assert decline is not None
    assert (decline.error_type, decline.error_code, decline.decline_code) == (
        "card_error",
        "card_declined",
        "do_not_honor",
    )
    assert (decline.advice_code, decline.network_advice_code, decline.network_decline_code) == (
        "try_again_later",
        "24",
        "05",
    )
    assert (decline.card_brand, decline.card_country) == ("mastercard", "GB")


@pytest.mark.parametrize("shape", SHAPES)
def test_the_invoice_and_both_decline_events_share_the_ids_that_join_them(shape: str) -> None:
    invoice = only(raw(f"invoice.payment_failed.{shape}"))
    charge = only(raw(f"charge.failed.{shape}"))
    intent = only(raw(f"payment_intent.payment_failed.{shape}"))
    assert invoice.payment_intent_id == charge.payment_intent_id == intent.payment_intent_id == PI
    assert charge.charge_id == intent.charge_id == CH
    assert charge.customer_id == intent.customer_id == invoice.customer_id


def test_a_payment_intent_without_an_error_still_gives_empty_decline_details() -> None:
    event = doc("payment_intent.payment_failed.basil")
    event["data"]["object"]["last_payment_error"] = None
    assert only(event).decline is not None
    assert only(event).charge_id == CH  # from latest_charge


# ---------------------------------------------------------------------------------------------- subscriptions


@pytest.mark.parametrize("shape", SHAPES)
def test_a_subscription_update_reports_its_status(shape: str) -> None:
    (event,) = events_of(in_api_version("customer.subscription.updated", shape))
    assert (event.kind, event.subscription_id, event.subscription_status) == (
        InboundKind.SUBSCRIPTION_UPDATED,
        SUB,
        "past_due",
    )
    assert (event.invoice_id, event.payment_method_id) == (INV, PM)


def test_a_new_default_payment_method_on_the_subscription_is_also_a_payment_method_update() -> None:
    updated, method = events_of(raw("customer.subscription.updated.new_default_method"))
    assert updated.kind == InboundKind.SUBSCRIPTION_UPDATED
    assert (method.kind, method.payment_method_id, method.subscription_id) == (
        InboundKind.PAYMENT_METHOD_UPDATED,
        PM,
        SUB,
    )
    assert method.provider_event_id == updated.provider_event_id


@pytest.mark.parametrize("shape", SHAPES)
def test_a_deleted_subscription_reports_it_is_canceled(shape: str) -> None:
    event = only(in_api_version("customer.subscription.deleted", shape))
    assert (event.kind, event.subscription_status) == (InboundKind.SUBSCRIPTION_DELETED, "canceled")


# ------------------------------------------------------------------------------------------ payment methods


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ["payment_method.attached", "payment_method.automatically_updated"])
def test_an_attached_or_updated_card_is_a_payment_method_update(name: str, shape: str) -> None:
    event = only(in_api_version(name, shape))
    assert (event.kind, event.payment_method_id, event.customer_id) == (
        InboundKind.PAYMENT_METHOD_UPDATED,
        PM,
        CUS,
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_a_customer_update_reports_the_default_method_and_what_the_provider_said_it_was(shape: str) -> None:
    event = only(in_api_version("customer.updated.default_method", shape))
    assert (event.kind, event.payment_method_id, event.customer_id) == (InboundKind.CUSTOMER_UPDATED, PM, CUS)
    assert event.previous_payment_method_id == "pm_1OldB7WZ01zgkWexpired"
    assert event.customer_email == "jenny.rosen@example.com"
    assert event.customer_since is None  # the fixture has no `created`


def test_a_customer_update_gives_the_customer_created_time_for_tenure() -> None:
    event = doc("customer.updated.default_method")
    event["data"]["object"]["created"] = 1_700_000_000
    assert only(event).customer_since == datetime.fromtimestamp(1_700_000_000, UTC)


def test_a_customer_update_without_previous_attributes_still_reports_the_default_method() -> None:
    event = doc("customer.updated.default_method")
    del event["data"]["previous_attributes"]
    parsed = only(event)
    assert (parsed.kind, parsed.payment_method_id, parsed.previous_payment_method_id) == (
        InboundKind.CUSTOMER_UPDATED, PM, None)


def test_a_customer_of_the_sources_api_reports_its_default_source() -> None:
    event = doc("customer.updated.default_method")
    obj = event["data"]["object"]
    obj["invoice_settings"]["default_payment_method"] = None
    obj["default_source"] = "card_new"
    event["data"]["previous_attributes"] = {"default_source": "card_old"}
    event["api_version"] = "2017-08-15"
    parsed = only(event)
    assert (parsed.payment_method_id, parsed.previous_payment_method_id) == ("card_new", "card_old")


def test_a_customer_update_of_another_field_reports_no_previous_method() -> None:
    (event,) = events_of(raw("customer.updated.email"))
    assert event.kind == InboundKind.CUSTOMER_UPDATED and event.previous_payment_method_id is None


def test_a_source_update_and_a_succeeded_setup_intent_are_payment_method_updates() -> None:
    source = retyped("payment_method.attached", "customer.source.updated")
    source["data"]["object"] = {"id": "card_1", "object": "card", "customer": CUS, "exp_year": 2031}
    assert (only(source).kind, only(source).payment_method_id) == (InboundKind.PAYMENT_METHOD_UPDATED, "card_1")
    setup = retyped("payment_method.attached", "setup_intent.succeeded")
    setup["data"]["object"] = {"id": "seti_1", "object": "setup_intent", "customer": CUS, "payment_method": PM,
                               "status": "succeeded"}
    assert (only(setup).kind, only(setup).payment_method_id) == (InboundKind.PAYMENT_METHOD_UPDATED, PM)
    setup["data"]["object"]["customer"] = None
    assert events_of(setup) == []  # a setup for nobody in particular


# ---------------------------------------------------------------------------------------------- unused types


@pytest.mark.parametrize(
    "event_type", ["customer.created", "invoice.upcoming", "invoice_payment.paid", "ping"]
)
def test_event_types_payrisk_does_not_use_give_no_events(event_type: str) -> None:
    event = retyped("customer.created", event_type)
    assert event_type not in EVENT_TYPES
    assert events_of(event) == []


def test_every_event_type_of_the_issue_is_normalized() -> None:
    assert set(INVOICE_KINDS) | {
        "charge.failed",
        "payment_intent.payment_failed",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "payment_method.attached",
        "payment_method.automatically_updated",
        "customer.updated",
        "customer.source.updated",
        "setup_intent.succeeded",
    } == set(EVENT_TYPES)


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"", "not JSON"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"evt_1"', "not a JSON object"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_payload_error(body: bytes, field: str) -> None:
    assert field in payload_error(body)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": None}, "event field id"),
        ({"id": ""}, "event field id"),
        ({"type": 42}, "event field type"),
        ({"created": None}, "event field created"),
        ({"created": "1772442000"}, "event field created"),
        ({"created": True}, "event field created"),
        ({"created": -1}, "event field created"),
        ({"created": 10**20}, "event field created"),
        ({"data": None}, "data.object"),
        ({"data": {"object": "in_1"}}, "data.object"),
    ],
)
def test_an_envelope_missing_a_required_field_names_it(change: dict[str, Any], field: str) -> None:
    assert field in payload_error({**doc("invoice.payment_failed.basil"), **change})


@pytest.mark.parametrize(
    ("name", "field", "value", "reason"),
    [
        ("invoice.payment_failed.basil", "customer", None, "data.object.customer is missing"),
        ("invoice.paid.legacy", "id", None, "data.object.id is missing"),
        ("charge.failed.basil", "customer", "", "data.object.customer is missing"),
        ("payment_intent.payment_failed.legacy", "customer", {"object": "customer"}, "data.object.customer"),
        ("customer.subscription.deleted", "id", 7, "data.object.id is missing"),
        ("payment_method.attached", "customer", None, "data.object.customer is missing"),
        ("customer.updated.default_method", "id", None, "data.object.id is missing"),
    ],
)
def test_a_verified_event_missing_a_required_field_is_a_payload_error_naming_it(
    name: str, field: str, value: Any, reason: str
) -> None:
    event = doc(name)
    event["data"]["object"][field] = value
    found = payload_error(event)
    assert reason in found
    assert event["id"] in found and event["type"] in found


def test_optional_fields_of_the_wrong_type_read_as_absent() -> None:
    event = doc("charge.failed.legacy")
    charge = event["data"]["object"]
    charge.update(amount="2000", currency=["usd"], outcome=["issuer_declined"], payment_method_details="card")
    normalized = only(event)
    assert (normalized.amount_due, normalized.currency) == (None, None)
    assert normalized.decline is not None
    assert (normalized.decline.outcome_type, normalized.decline.card_brand) == (None, None)
    assert normalized.decline.error_code == "card_declined"


def test_an_out_of_range_next_attempt_reads_as_absent() -> None:
    event = doc("invoice.payment_failed.legacy")
    event["data"]["object"]["next_payment_attempt"] = 10**30
    assert only(event).next_payment_attempt is None


def test_the_envelope_object_is_read_in_place_not_copied() -> None:
    envelope = parse_envelope(raw("charge.failed.basil"))
    assert isinstance(envelope, StripeEnvelope)
    assert normalize(envelope)[0].charge_id == envelope.obj["id"]
