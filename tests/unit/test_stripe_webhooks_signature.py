"""`Stripe-Signature` verification: headers built with the documented scheme, checked by the official SDK."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import orjson
import pytest
import stripe

from gateway.providers.stripe import SignatureError, SignatureReason, verify

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"
BODY = (FIXTURES / "invoice.payment_failed.basil.json").read_bytes()
SECRET = "whsec_test_current_3Rk8f2Xb7nA9vQ1c"
OLD_SECRET = "whsec_test_previous_L0p4Wz6yT2mE8sHd"
NOW = 1_772_442_000
TOLERANCE = 300


def v1(body: bytes, secret: str, timestamp: int) -> str:
    """hex(HMAC-SHA256(secret, f"{t}." + raw body)), as reference/stripe.md §5 documents it."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def header(body: bytes = BODY, secret: str = SECRET, timestamp: int = NOW) -> str:
    return f"t={timestamp},v1={v1(body, secret, timestamp)}"


def reason_of(body: bytes, signature: str | None, secrets: list[str], now: int = NOW) -> str:
    with pytest.raises(SignatureError) as caught:
        verify(body, signature, secrets, TOLERANCE, now=now)
    return caught.value.reason


def test_a_delivery_signed_with_the_endpoint_secret_is_accepted() -> None:
    verify(BODY, header(), [SECRET], TOLERANCE, now=NOW)


def test_a_header_made_by_the_sdk_itself_is_accepted() -> None:
    made = stripe.WebhookSignature.generate_signature_header(BODY.decode(), SECRET, timestamp=NOW)
    verify(BODY, made, [SECRET], TOLERANCE, now=NOW)


def test_the_stored_test_vector_verifies_and_matches_the_documented_scheme() -> None:
    vector = json.loads((FIXTURES / "signature_vector.json").read_text())
    body = vector["payload"].encode()
    assert v1(body, vector["secret"], vector["timestamp"]) == vector["v1"]
    verify(body, vector["header"], [vector["secret"]], TOLERANCE, now=vector["timestamp"])


def test_a_delivery_signed_with_another_secret_is_refused_as_a_mismatch() -> None:
    assert reason_of(BODY, header(secret="whsec_someone_else"), [SECRET]) == SignatureReason.MISMATCH


def test_during_rotation_a_delivery_signed_with_either_secret_is_accepted() -> None:
    verify(BODY, header(secret=OLD_SECRET), [SECRET, OLD_SECRET], TOLERANCE, now=NOW)
    verify(BODY, header(secret=SECRET), [SECRET, OLD_SECRET], TOLERANCE, now=NOW)


def test_a_header_carrying_one_signature_per_rolled_secret_is_accepted_with_either() -> None:
    both = f"t={NOW},v1={v1(BODY, OLD_SECRET, NOW)},v1={v1(BODY, SECRET, NOW)}"
    verify(BODY, both, [OLD_SECRET], TOLERANCE, now=NOW)
    verify(BODY, both, [SECRET], TOLERANCE, now=NOW)


def test_blank_secrets_in_the_list_are_skipped() -> None:
    verify(BODY, header(), ["", "  ", SECRET], TOLERANCE, now=NOW)


def test_without_any_configured_secret_nothing_verifies() -> None:
    assert reason_of(BODY, header(), []) == SignatureReason.NO_SECRET
    assert reason_of(BODY, header(), [" "]) == SignatureReason.NO_SECRET


def test_a_signature_older_than_the_tolerance_is_stale() -> None:
    assert reason_of(BODY, header(timestamp=NOW - TOLERANCE - 1), [SECRET]) == SignatureReason.STALE


def test_a_signature_exactly_at_the_tolerance_is_still_fresh() -> None:
    verify(BODY, header(timestamp=NOW - TOLERANCE), [SECRET], TOLERANCE, now=NOW)


def test_a_timestamp_in_the_future_is_accepted_as_the_sdk_does() -> None:
    verify(BODY, header(timestamp=NOW + 3600), [SECRET], TOLERANCE, now=NOW)


def test_a_forged_old_header_is_reported_as_a_mismatch_not_as_stale() -> None:
    forged = header(secret="whsec_forger", timestamp=NOW - 10_000)
    assert reason_of(BODY, forged, [SECRET]) == SignatureReason.MISMATCH


def test_a_tampered_body_is_refused() -> None:
    tampered = BODY.replace(b'"amount_due": 2000', b'"amount_due": 2}00', 1)
    assert tampered != BODY
    assert reason_of(tampered, header(), [SECRET]) == SignatureReason.MISMATCH


def test_re_serialized_json_no_longer_matches_the_signature_over_the_raw_bytes() -> None:
    reserialized = orjson.dumps(orjson.loads(BODY))
    assert orjson.loads(reserialized) == orjson.loads(BODY)
    assert reason_of(reserialized, header(), [SECRET]) == SignatureReason.MISMATCH


def test_a_changed_timestamp_invalidates_the_signature() -> None:
    replayed = header().replace(f"t={NOW}", f"t={NOW + 1}")
    assert reason_of(BODY, replayed, [SECRET]) == SignatureReason.MISMATCH


@pytest.mark.parametrize("missing", [None, ""])
def test_a_delivery_without_the_header_is_refused(missing: str | None) -> None:
    assert reason_of(BODY, missing, [SECRET]) == SignatureReason.MISSING_HEADER


def test_a_header_with_only_the_legacy_v0_scheme_has_no_v1_signature() -> None:
    only_v0 = f"t={NOW},v0={v1(BODY, SECRET, NOW)}"
    assert reason_of(BODY, only_v0, [SECRET]) == SignatureReason.NO_V1


@pytest.mark.parametrize(
    "bad",
    [
        f"v1={'a' * 64}",
        f"t=,v1={'a' * 64}",
        f"t=soon,v1={'a' * 64}",
        f"t=-5,v1={'a' * 64}",
        "t=" + "9" * 5000,
    ],
)
def test_a_header_without_a_usable_timestamp_is_refused(bad: str) -> None:
    assert reason_of(BODY, bad, [SECRET]) == SignatureReason.NO_TIMESTAMP


@pytest.mark.parametrize(
    "bad", [f"t={NOW},v1=é{'a' * 63}", f"t,v1={'a' * 64}", f"t={NOW},v1", f"t={NOW},v1={'a' * 64},t"]
)
def test_a_header_the_sdk_cannot_read_is_malformed(bad: str) -> None:
    assert reason_of(BODY, bad, [SECRET]) == SignatureReason.MALFORMED_HEADER


def test_a_bare_v1_field_next_to_a_valid_signature_is_malformed_rather_than_a_mismatch() -> None:
    assert reason_of(BODY, header() + ",v1", [SECRET]) == SignatureReason.MALFORMED_HEADER


def test_a_body_that_is_not_utf8_cannot_have_been_signed_by_stripe() -> None:
    body = b'{"id": "evt_\xff"}'
    assert reason_of(body, header(body), [SECRET]) == SignatureReason.BODY_NOT_UTF8


def test_every_refusal_reason_is_a_distinct_sentence() -> None:
    reasons = [reason.value for reason in SignatureReason]
    assert len(set(reasons)) == len(reasons) == 8
