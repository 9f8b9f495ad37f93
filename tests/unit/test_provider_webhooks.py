"""Adyen, Braintree, Paddle and the generic endpoint: the vendors' own samples and signature vectors verify (and a
changed byte does not); every failure type normalizes to the right category with the raw codes kept; the same
customer id under two providers is two customers."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from Adyen.util import generate_notification_sig

from actors.domain.classification import Category, classify, default_tables
from actors.domain.inbound import InboundEvent, InboundKind
from actors.domain.streams import customer_key, provider_customer_id, provider_of
from gateway.providers import registry
from gateway.providers.adyen.signature import verify_item
from gateway.providers.base import PayloadError, SignatureError
from gateway.providers.generic.schema import GenericEvent
from gateway.providers.generic.signature import sign
from gateway.providers.paddle.signature import verify as paddle_verify

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]
ADYEN_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"


def load(path: str) -> Any:
    return json.loads((FIXTURES / path).read_text())


def read(provider: str, body: bytes, credentials: dict[str, Any], headers: dict[str, str] | None = None,
         now: float = 0.0) -> list[registry.ProviderEvent]:
    entry = registry.get(provider)
    assert entry is not None
    return entry.read(registry.SignedRequest(body, headers or {}, now), credentials)


def category(provider: str, event: InboundEvent) -> Category:
    assert event.decline is not None
    return classify(provider, event.decline, default_tables()).category


# --------------------------------------------------------------------------------------------- Adyen

ADYEN_VECTORS = [load("adyen/hmac_vector_python_lib_authorisation.json"),
                 *[v for v in load("adyen/hmac_vectors_java_lib.json") if "notification_request_item" in v]]


@pytest.mark.parametrize("vector", ADYEN_VECTORS, ids=lambda v: v["_source"]["path"][:40])
def test_adyens_own_hmac_vectors_verify_and_a_changed_byte_does_not(vector: dict[str, Any]) -> None:
    item = {**vector["notification_request_item"]}
    item["additionalData"] = {**item.get("additionalData", {}), "hmacSignature": vector["expected_hmacSignature"]}
    verify_item(item, ["00" * 32, vector["hmac_key_hex"]])  # the second key matches: rotation
    tampered = {**item, "merchantReference": item["merchantReference"] + "x"}
    with pytest.raises(SignatureError):
        verify_item(tampered, [vector["hmac_key_hex"]])


def test_an_adyen_item_without_a_signature_or_key_is_refused() -> None:
    item = load("adyen/hmac_vector_python_lib_authorisation.json")["notification_request_item"]
    with pytest.raises(SignatureError, match="hmacSignature"):
        verify_item(item, [ADYEN_KEY])
    with pytest.raises(SignatureError, match="no Adyen HMAC key"):
        verify_item(item, [])


def adyen_body(item: dict[str, Any], key: str = ADYEN_KEY) -> bytes:
    item = copy.deepcopy(item)
    extra = item.setdefault("additionalData", {})
    extra.pop("hmacSignature", None)
    signed = {k: v for k, v in item.items() if k != "additionalData"}
    extra["hmacSignature"] = generate_notification_sig(signed, key).decode()
    return orjson.dumps({"live": "false", "notificationItems": [{"NotificationRequestItem": item}]})


def adyen_failure(reason_code: str, reason: str, **extra: str) -> dict[str, Any]:
    return {"pspReference": f"psp{reason_code}", "merchantAccountCode": "PayriskTest", "merchantReference": "inv-7",
            "amount": {"value": 4900, "currency": "EUR"}, "eventCode": "AUTHORISATION", "success": "false",
            "eventDate": "2026-03-02T10:00:00+01:00", "paymentMethod": "mc", "reason": reason,
            "additionalData": {"shopperReference": "cust-1", "refusalReasonCode": reason_code,
                               "recurring.recurringDetailReference": "8415000000000001",
                               "recurringProcessingModel": "Subscription", **extra}}


def test_the_adyen_vendor_envelopes_parse_and_sign_as_a_whole() -> None:
    for name in ("envelope_authorisation_true", "envelope_refund_false", "envelope_capture_false"):
        item = load(f"adyen/{name}.json")["notificationItems"][0]["NotificationRequestItem"]
        events = read("adyen", adyen_body(item), {"adyen_hmac_keys": [ADYEN_KEY]})
        assert events[0].id.startswith(item["pspReference"])
        assert events[0].normalize() == []  # no shopperReference in Adyen's mocks: nothing to recover


@pytest.mark.parametrize(("code", "reason", "extra", "expected"), [
    ("12", "Not enough balance", {"refusalReasonRaw": "51 : Insufficient funds"}, Category.SOFT_DECLINE),
    ("6", "Expired Card", {}, Category.HARD_DECLINE),
    ("5", "Blocked Card", {}, Category.HARD_DECLINE),
    ("20", "FRAUD", {}, Category.FRAUD_FLAGGED),
    ("38", "Authentication required", {}, Category.AUTHENTICATION_REQUIRED),
    ("9", "Issuer Unavailable", {}, Category.NETWORK_ERROR),
    ("7", "Invalid Amount", {}, Category.CONFIG_ERROR),
    ("46", "Transaction blocked by Adyen to prevent excessive retry fees", {}, Category.HARD_DECLINE),
    ("2", "Refused", {"merchantAdviceCode": "03 : Do not try again"}, Category.HARD_DECLINE),
])
def test_every_adyen_failure_type_normalizes_to_its_category_with_raw_codes(
        code: str, reason: str, extra: dict[str, str], expected: Category) -> None:
    [event] = read("adyen", adyen_body(adyen_failure(code, reason, **extra)), {"adyen_hmac_keys": [ADYEN_KEY]})
    [inbound] = event.normalize()
    assert inbound.kind == InboundKind.PAYMENT_FAILED and inbound.customer_id == "adyen:cust-1"
    assert (inbound.invoice_id, inbound.amount_due, inbound.currency) == ("inv-7", 4900, "eur")
    assert inbound.payment_method_id == "8415000000000001" and inbound.billing_reason == "Subscription"
    assert inbound.decline is not None and inbound.decline.decline_code == code
    assert inbound.decline.card_brand == "mastercard"
    assert category("adyen", inbound) == expected
    result = classify("adyen", inbound.decline, default_tables())
    assert result.raw_codes["decline_code"] == code
    for value in extra.values():
        assert value in result.raw_codes.values()


def test_adyen_success_recurring_contract_and_cancellation_normalize() -> None:
    ok = {**adyen_failure("0", ""), "success": "true", "reason": "076181:1111:03/2030"}
    [paid] = read("adyen", adyen_body(ok), {"adyen_hmac_keys": [ADYEN_KEY]})[0].normalize()
    assert paid.kind == InboundKind.PAYMENT_SUCCEEDED and paid.amount_paid == 4900
    contract = {**adyen_failure("0", ""), "eventCode": "RECURRING_CONTRACT", "success": "true", "pspReference": "8415"}
    contract["additionalData"] = {"shopperReference": "cust-1"}
    [updated] = read("adyen", adyen_body(contract), {"adyen_hmac_keys": [ADYEN_KEY]})[0].normalize()
    assert updated.kind == InboundKind.PAYMENT_METHOD_UPDATED and updated.payment_method_id == "8415"
    cancel = {**adyen_failure("0", ""), "eventCode": "CANCELLATION", "success": "true", "originalReference": "p1"}
    [voided] = read("adyen", adyen_body(cancel), {"adyen_hmac_keys": [ADYEN_KEY]})[0].normalize()
    assert voided.kind == InboundKind.INVOICE_VOIDED and voided.invoice_id == "inv-7"


def test_an_adyen_delivery_with_a_tampered_body_or_wrong_basic_auth_is_refused() -> None:
    body = adyen_body(adyen_failure("12", "Not enough balance"))
    with pytest.raises(SignatureError):
        read("adyen", body.replace(b"4900", b"4901"), {"adyen_hmac_keys": [ADYEN_KEY]})
    creds = {"adyen_hmac_keys": [ADYEN_KEY], "adyen_webhook_basic_auth": "adyen:s3cret"}
    good = "Basic " + base64.b64encode(b"adyen:s3cret").decode()
    assert read("adyen", body, creds, {"authorization": good})
    with pytest.raises(SignatureError, match="Basic auth"):
        read("adyen", body, creds, {"authorization": "Basic " + base64.b64encode(b"adyen:guess").decode()})


# --------------------------------------------------------------------------------------------- Braintree

BT = load("braintree/webhook_testing_samples_generated.json")
BT_CREDS = {"braintree_public_key": BT["public_key"], "braintree_private_key": BT["private_key"],
            "braintree_merchant_id": "integration_merchant_id"}


def bt_form(signature: str, payload: str) -> bytes:
    from urllib.parse import urlencode

    return urlencode({"bt_signature": signature, "bt_payload": payload}).encode()


@pytest.mark.parametrize("sample", BT["samples"], ids=lambda s: s["kind"])
def test_braintree_sdk_samples_verify_and_a_changed_byte_does_not(sample: dict[str, Any]) -> None:
    [event] = read("braintree", bt_form(sample["bt_signature"], sample["bt_payload"]), BT_CREDS)
    assert event.type == sample["kind"]
    flipped = sample["bt_payload"][:10] + ("A" if sample["bt_payload"][10] != "A" else "B") + sample["bt_payload"][11:]
    with pytest.raises(SignatureError):
        read("braintree", bt_form(sample["bt_signature"], flipped), BT_CREDS)
    with pytest.raises(SignatureError):
        read("braintree", bt_form(sample["bt_signature"], sample["bt_payload"]),
             {**BT_CREDS, "braintree_private_key": "another_private_key"})


def test_the_braintree_sample_failure_normalizes_keyed_by_its_subscription() -> None:
    sample = next(s for s in BT["samples"] if s["kind"] == "subscription_charged_unsuccessfully")
    [inbound] = read("braintree", bt_form(sample["bt_signature"], sample["bt_payload"]), BT_CREDS)[0].normalize()
    assert inbound.kind == InboundKind.PAYMENT_FAILED
    assert inbound.customer_id == "braintree:subscription:sub_or_txn_id_123" and inbound.amount_due == 4999
    assert category("braintree", inbound) == Category.NETWORK_ERROR  # status `failed`: a processing error


def test_the_braintree_challenge_answer_matches_the_sdk_vector() -> None:
    entry = registry.get("braintree")
    assert entry is not None and entry.challenge is not None
    creds = {"braintree_public_key": "integration_public_key", "braintree_private_key": "integration_private_key"}
    assert entry.challenge("20f9f8ed05f77439fe955c977e4c8a53", creds) == (
        "integration_public_key|d9b899556c966b3f06945ec21311865d35df3ce4")
    with pytest.raises(PayloadError):
        entry.challenge("not-hex!", creds)


def bt_notification(kind: str, **txn: str) -> bytes:
    """A notification as Braintree sends it, signed by the SDK's own helper (the XML carries a full transaction)."""
    from braintree.util.crypto import Crypto
    from braintree.util.xml_util import XmlUtil

    transaction = {"id": "txn1", "status": "processor_declined", "amount": "25.00", "currency_iso_code": "USD",
                   "customer": {"id": "cust-1"}, "subscription_id": "sub1",
                   "subscription": {"billing_period_start_date": "2026-03-01"},
                   "credit_card": {"card_type": "Visa", "unique_number_identifier": "fp1", "token": "tok1"}, **txn}
    xml = XmlUtil.xml_from_dict({"notification": {"timestamp": "2026-03-02T10:00:00Z", "kind": kind, "subject": {
        "subscription": {"id": "sub1", "failure_count": 1, "payment_method_token": "tok1",
                         "transactions": [transaction]}}}})
    payload = base64.encodebytes(xml.encode()).decode()
    return bt_form(f"{BT['public_key']}|{Crypto.sha1_hmac_hash(BT['private_key'], payload)}", payload)


@pytest.mark.parametrize(("txn", "expected"), [
    ({"processor_response_code": "2001", "processor_response_type": "soft_declined"}, Category.SOFT_DECLINE),
    ({"processor_response_code": "2004", "processor_response_type": "hard_declined"}, Category.HARD_DECLINE),
    ({"processor_response_code": "2014", "processor_response_type": "hard_declined"}, Category.FRAUD_FLAGGED),
    ({"processor_response_code": "2099", "processor_response_type": "soft_declined"},
     Category.AUTHENTICATION_REQUIRED),
    ({"processor_response_code": "3000", "processor_response_type": "soft_declined"}, Category.NETWORK_ERROR),
    ({"status": "gateway_rejected", "gateway_rejection_reason": "excessive_retry"}, Category.HARD_DECLINE),
    ({"status": "gateway_rejected", "gateway_rejection_reason": "avs"}, Category.HARD_DECLINE),
    ({"status": "gateway_rejected", "gateway_rejection_reason": "application_incomplete"}, Category.CONFIG_ERROR),
    ({"processor_response_code": "2000", "merchant_advice_code": "21", "network_response_code": "05"},
     Category.HARD_DECLINE),
])
def test_every_braintree_failure_type_normalizes_to_its_category_with_raw_codes(
        txn: dict[str, str], expected: Category) -> None:
    body = bt_notification("subscription_charged_unsuccessfully", **txn)
    [inbound] = read("braintree", body, BT_CREDS)[0].normalize()
    assert inbound.customer_id == "braintree:cust-1" and inbound.invoice_id == "sub1:2026-03-01"
    assert (inbound.amount_due, inbound.currency, inbound.payment_method_id) == (2500, "usd", "tok1")
    assert inbound.decline is not None and inbound.decline.card_fingerprint == "fp1"
    assert category("braintree", inbound) == expected
    raw = classify("braintree", inbound.decline, default_tables()).raw_codes
    for value in txn.values():
        assert value in raw.values()


def test_braintree_success_and_cancellation_normalize() -> None:
    [paid] = read("braintree", bt_notification("subscription_charged_successfully", status="settled"),
                  BT_CREDS)[0].normalize()
    assert paid.kind == InboundKind.PAYMENT_SUCCEEDED and paid.invoice_id == "sub1:2026-03-01"
    [gone] = read("braintree", bt_notification("subscription_canceled"), BT_CREDS)[0].normalize()
    assert gone.kind == InboundKind.SUBSCRIPTION_DELETED and gone.subscription_id == "sub1"


# --------------------------------------------------------------------------------------------- Paddle

PADDLE_VECTOR = load("paddle/signature_vector_sdk_test.json")


def test_paddles_own_signature_vector_verifies_and_a_changed_byte_does_not() -> None:
    secrets = [*PADDLE_VECTOR["failing_secrets"], PADDLE_VECTOR["matching_secret"]]
    paddle_verify(PADDLE_VECTOR["body"].encode(), PADDLE_VECTOR["header"], secrets, 5, PADDLE_VECTOR["timestamp"])
    with pytest.raises(SignatureError, match="no h1"):
        paddle_verify(b"hello-worle", PADDLE_VECTOR["header"], secrets, 5, PADDLE_VECTOR["timestamp"])
    with pytest.raises(SignatureError, match="no h1"):
        paddle_verify(PADDLE_VECTOR["body"].encode(), PADDLE_VECTOR["header"], PADDLE_VECTOR["failing_secrets"], 5,
                      PADDLE_VECTOR["timestamp"])
    with pytest.raises(SignatureError, match="tolerance"):
        paddle_verify(PADDLE_VECTOR["body"].encode(), PADDLE_VECTOR["header"], secrets, 5,
                      PADDLE_VECTOR["timestamp"] + 6)


SECRET = "pdl_ntfset_01test_secret"


def paddle_body(event_type: str, data: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    from paddle_billing.Notifications.PaddleSignature import PaddleSignature

    body = orjson.dumps({"event_id": f"evt_{event_type}", "event_type": event_type,
                         "occurred_at": "2024-04-12T10:24:03.197001Z", "notification_id": "ntf_1", "data": data})
    h1 = PaddleSignature.calculate_hmac(SECRET, b"1712917443:" + body).hexdigest()
    return body, {"paddle-signature": f"ts=1712917443;h1={h1}"}


def paddle_read(event_type: str, data: dict[str, Any]) -> list[InboundEvent]:
    body, headers = paddle_body(event_type, data)
    creds = {"paddle_webhook_secrets": [SECRET], "paddle_tolerance_seconds": 5}
    return read("paddle", body, creds, headers, now=1712917444)[0].normalize()


@pytest.mark.parametrize("name", ["transaction_payment_failed", "transaction_past_due"])
def test_paddles_simulation_payloads_normalize_with_the_raw_error_code(name: str) -> None:
    sample = load(f"paddle/{name}_data.json")
    [inbound] = paddle_read(sample["event_type"], sample["data"])
    assert inbound.customer_id.startswith("paddle:ctm_") and inbound.invoice_id == sample["data"]["id"]
    assert inbound.decline is not None and inbound.decline.error_code == sample["data"]["payments"][0]["error_code"]
    assert inbound.kind == (InboundKind.PAYMENT_FAILED if name == "transaction_payment_failed"
                            else InboundKind.DECLINE_DETAILS)
    assert category("paddle", inbound) == (Category.SOFT_DECLINE if name == "transaction_payment_failed"
                                           else Category.AUTHENTICATION_REQUIRED)


@pytest.mark.parametrize(("code", "expected"), [
    ("declined", Category.SOFT_DECLINE), ("not_enough_balance", Category.SOFT_DECLINE),
    ("declined_not_retryable", Category.HARD_DECLINE), ("expired_card", Category.HARD_DECLINE),
    ("blocked_card", Category.HARD_DECLINE), ("fraud", Category.FRAUD_FLAGGED),
    ("authentication_failed", Category.AUTHENTICATION_REQUIRED), ("psp_error", Category.NETWORK_ERROR),
    ("invalid_amount", Category.CONFIG_ERROR),
])
def test_every_paddle_error_code_normalizes_to_its_category(code: str, expected: Category) -> None:
    data = load("paddle/transaction_payment_failed_data.json")["data"]
    data = {**data, "payments": [{**data["payments"][0], "error_code": code}]}
    [inbound] = paddle_read("transaction.payment_failed", data)
    assert category("paddle", inbound) == expected


def test_paddle_subscription_past_due_and_its_own_retries() -> None:
    sample = load("paddle/subscription_past_due_data.json")
    [sub] = paddle_read("subscription.past_due", sample["data"])
    assert sub.kind == InboundKind.SUBSCRIPTION_UPDATED and sub.subscription_status == "past_due"
    data = load("paddle/transaction_payment_failed_data.json")["data"]
    retried = {**data, "payments": [data["payments"][0], {**data["payments"][0], "payment_attempt_id": "older"}]}
    [failure] = paddle_read("transaction.payment_failed", retried)
    assert failure.provider_attempt is True and failure.attempt_count == 2
    entry = registry.get("paddle")
    assert entry is not None and entry.observe_only and entry.executor is None


# --------------------------------------------------------------------------------------------- generic

GENERIC_SECRET = "whsec_" + base64.b64encode(b"relay-secret-32-bytes-long-enough").decode()


def generic(body: dict[str, Any], *, msg_id: str = "msg_1", stamp: int = 1_772_442_000, now: float = 1_772_442_010,
            secret: str = GENERIC_SECRET) -> list[registry.ProviderEvent]:
    raw = orjson.dumps(body)
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(stamp),
               "webhook-signature": "v1,bm90LXRoaXM= " + sign(secret, msg_id, stamp, raw)}
    return read("generic", raw, {"generic_webhook_secrets": [GENERIC_SECRET]}, headers, now=now)


def test_the_standard_webhooks_spec_example_signature_is_reproduced() -> None:
    # the example in the Standard Webhooks specification (standard-webhooks/spec, "Signature scheme")
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")


def test_a_generic_event_verifies_and_classifies_and_a_changed_byte_does_not() -> None:
    body = {"type": "payment.failed", "occurred_at": "2026-03-02T10:00:00Z", "customer_id": "c1",
            "invoice_id": "i1", "amount": 1200, "currency": "EUR",
            "decline": {"code": "insufficient_funds", "provider_code": "AM04", "network_decline_code": "51"}}
    [event] = generic(body)
    [inbound] = event.normalize()
    assert inbound.customer_id == "generic:c1" and inbound.provider_event_id == "msg_1"
    assert category("generic", inbound) == Category.SOFT_DECLINE
    assert inbound.decline is not None and inbound.decline.message == "[AM04]"
    with pytest.raises(SignatureError, match="no v1"):
        read("generic", orjson.dumps(body) + b" ", {"generic_webhook_secrets": [GENERIC_SECRET]},
             {"webhook-id": "msg_1", "webhook-timestamp": "1772442000",
              "webhook-signature": sign(GENERIC_SECRET, "msg_1", 1772442000, orjson.dumps(body))}, now=1772442000)
    with pytest.raises(SignatureError, match="tolerance"):
        generic(body, now=1_772_442_000 + 301)
    with pytest.raises(PayloadError):
        generic({**body, "type": "payment.maybe"})


def test_the_published_json_schema_is_the_models() -> None:
    published = json.loads((ROOT / "docs" / "schemas" / "generic-webhook-event.schema.json").read_text())
    assert published == GenericEvent.model_json_schema()


# --------------------------------------------------------------------------------------------- isolation

def test_the_same_customer_id_under_two_providers_is_two_streams() -> None:
    keys = {customer_key(p, "cust-1") for p in ("stripe", "adyen", "braintree", "paddle", "generic")}
    assert len(keys) == 5 and "cust-1" in keys  # Stripe keeps the bare id: existing streams keep working
    for key in keys:
        assert provider_customer_id(key) == "cust-1"
    assert provider_of("cus_Nx1") == "stripe" and provider_of("adyen:cust-1") == "adyen"
    assert provider_of(customer_key("braintree", "subscription:sub1")) == "braintree"


def test_every_registered_provider_refuses_an_unsigned_delivery() -> None:
    for name in registry.NAMES:
        with pytest.raises((SignatureError, PayloadError)):
            read(name, b"{}", {})
