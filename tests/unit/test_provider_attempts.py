"""Which events are the provider's own attempts (written to the attempt ledger so the network budget counts them):
Stripe's Smart Retries (`attempt_count` past the first without our idempotency key), Braintree's own retries
(`failure_count` above 1, as the simulator's dialect sends them), Adyen Auto Rescue's next attempts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from Adyen.util import generate_notification_sig

from actors.domain.inbound import InboundKind
from gateway.providers import registry
from gateway.providers.stripe import normalize, parse_envelope
from simulator.braintree import BraintreeDialect
from simulator.dialect import PaymentBook
from tests.support.stripe_events import envelope, invoice

HMAC = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"


def stripe_failed(attempt_count: int, key: str | None, event_type: str = "invoice.payment_failed") -> Any:
    inv = invoice("in_1", "cus_1", status="paid" if event_type == "invoice.paid" else "open")
    inv["attempt_count"] = attempt_count
    [event] = normalize(parse_envelope(envelope("evt_1", event_type, inv, idempotency_key=key)))
    return event


@pytest.mark.parametrize(("attempt_count", "key", "expected"), [
    (1, None, False),  # the renewal's own first attempt: not a retry
    (2, None, True),  # Stripe's Smart Retry
    (5, None, True),
    (2, "payrisk:default:in_1:1", False),  # our own retry, echoed with our key
])
def test_a_stripe_failure_past_the_first_attempt_without_our_key_is_a_smart_retry(
        attempt_count: int, key: str | None, expected: bool) -> None:
    event = stripe_failed(attempt_count, key)
    assert event.kind == InboundKind.PAYMENT_FAILED and event.provider_attempt is expected
    assert event.attempt_count == attempt_count


def test_a_smart_retry_that_paid_is_the_providers_attempt_too() -> None:
    assert stripe_failed(3, None, "invoice.paid").provider_attempt is True
    assert stripe_failed(1, None, "invoice.paid").provider_attempt is False


def test_braintrees_own_retry_is_a_provider_attempt_and_its_first_billing_is_not() -> None:
    now = [datetime(2026, 3, 2, 9, tzinfo=UTC)]
    book = PaymentBook("always_decline:insufficient_funds", clock=lambda: now[0])
    bt = BraintreeDialect("m", "pub", "priv", book=book)
    bt.customer("c1", "tok", email="a@example.com")
    bt.subscribe("sub1", "tok", 900)
    bt.bill("sub1")
    now[0] += timedelta(days=1)
    bt.bill("sub1")  # Braintree's retry
    creds = {"braintree_merchant_id": "m", "braintree_public_key": "pub", "braintree_private_key": "priv"}
    read = registry.get("braintree").read  # type: ignore[union-attr]
    failures = [e for form in bt.outbox for p in read(registry.SignedRequest(urlencode(form).encode(), {}, 0), creds)
                for e in p.normalize() if e.kind == InboundKind.PAYMENT_FAILED]
    assert [(e.attempt_count, e.provider_attempt) for e in failures] == [(1, False), (2, True)]
    assert {e.invoice_id for e in failures} == {"sub1:2026-03-02"}  # one billing period, one case
    assert failures[0].decline is not None and failures[0].decline.decline_code == "2001"
    assert failures[0].customer_email == "a@example.com"


def test_adyens_auto_rescue_next_attempt_is_a_provider_attempt() -> None:
    item: dict[str, Any] = {"pspReference": "PSP9", "merchantAccountCode": "M", "merchantReference": "inv-9",
                            "amount": {"value": 900, "currency": "EUR"}, "eventCode": "AUTORESCUE_NEXT_ATTEMPT",
                            "success": "false", "paymentMethod": "visa", "eventDate": "2026-03-02T09:00:00+00:00",
                            "reason": "Not enough balance"}
    signature = generate_notification_sig(item, HMAC).decode()
    item["additionalData"] = {"shopperReference": "s9", "refusalReasonCode": "12", "retry.attempt2.rawResponse":
                              "51", "hmacSignature": signature}
    body = orjson.dumps({"live": "false", "notificationItems": [{"NotificationRequestItem": item}]})
    read = registry.get("adyen").read  # type: ignore[union-attr]
    [event] = [e for p in read(registry.SignedRequest(body, {}, 0), {"adyen_hmac_keys": [HMAC]})
               for e in p.normalize()]
    assert event.kind == InboundKind.DECLINE_DETAILS and event.provider_attempt is True
    assert event.attempt_count == 2 and event.invoice_id == "inv-9"


@pytest.mark.parametrize("success", ["true", "false"])
def test_an_adyen_refund_is_stored_as_an_ignored_delivery_and_changes_no_case(success: str) -> None:
    from gateway.provider_webhooks import _delivery

    item: dict[str, Any] = {"pspReference": "PSP10", "originalReference": "PSP9", "merchantAccountCode": "M",
                            "merchantReference": "inv-9", "amount": {"value": 900, "currency": "EUR"},
                            "eventCode": "REFUND", "success": success, "paymentMethod": "visa",
                            "eventDate": "2026-03-02T09:00:00+00:00", "reason": ""}
    item["additionalData"] = {"shopperReference": "s9", "hmacSignature": generate_notification_sig(item, HMAC).decode()}
    body = orjson.dumps({"live": "false", "notificationItems": [{"NotificationRequestItem": item}]})
    [event] = registry.get("adyen").read(registry.SignedRequest(body, {}, 0), {"adyen_hmac_keys": [HMAC]})  # type: ignore[union-attr]
    delivery = _delivery("default", "adyen", event, body, {})
    assert (delivery.status, delivery.status_reason) == ("ignored", "event type REFUND is not used")
    assert delivery.events == [] and delivery.body == body  # kept with its raw body, no recovery event
