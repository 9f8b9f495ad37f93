"""Alert payloads and the generic webhook signature: round trip, tampering, staleness, rotation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from actors.notifier.alerts import SignatureError, generic_body, slack_body, verify_signature
from actors.notifier.messages import AlertPayload
from actors.notifier.signature import sign

NOW = datetime(2025, 3, 4, 12, tzinfo=UTC)
TOLERANCE = timedelta(minutes=5)
BODY = b'{"id":"acme:alert:config:1","kind":"engineering"}'


def alert(**fields: str) -> AlertPayload:
    return AlertPayload(
        kind="engineering", title="Stripe API key invalid", text="401 <from> Stripe & co", fields=fields
    )


def test_a_signed_body_verifies_with_the_same_secret() -> None:
    header = sign("whsec_1", BODY, int(NOW.timestamp()))
    verify_signature("whsec_1", header, BODY, TOLERANCE, NOW + timedelta(seconds=30))


def test_a_tampered_body_is_rejected() -> None:
    header = sign("whsec_1", BODY, int(NOW.timestamp()))
    with pytest.raises(SignatureError, match="no signature matches"):
        verify_signature("whsec_1", header, BODY.replace(b"engineering", b"fraud"), TOLERANCE, NOW)


def test_a_different_secret_is_rejected() -> None:
    header = sign("whsec_1", BODY, int(NOW.timestamp()))
    with pytest.raises(SignatureError):
        verify_signature("whsec_2", header, BODY, TOLERANCE, NOW)


def test_a_stale_signature_is_rejected_even_when_it_matches() -> None:
    header = sign("whsec_1", BODY, int(NOW.timestamp()))
    with pytest.raises(SignatureError, match="tolerance"):
        verify_signature("whsec_1", header, BODY, TOLERANCE, NOW + timedelta(minutes=6))


def test_a_changed_timestamp_breaks_the_signature() -> None:
    header = sign("whsec_1", BODY, int(NOW.timestamp())).replace(
        f"t={int(NOW.timestamp())}", f"t={int(NOW.timestamp()) + 1}"
    )
    with pytest.raises(SignatureError, match="no signature matches"):
        verify_signature("whsec_1", header, BODY, TOLERANCE, NOW)


@pytest.mark.parametrize("header", ["", "v1=abc", "t=1700000000", "t=soon,v1=abc"])
def test_a_malformed_header_is_rejected(header: str) -> None:
    with pytest.raises(SignatureError, match="needs t="):
        verify_signature("whsec_1", header, BODY, TOLERANCE, NOW)


def test_during_secret_rotation_either_signature_is_accepted() -> None:
    t = int(NOW.timestamp())
    old, new = sign("old", BODY, t), sign("new", BODY, t)
    header = f"{old},{new.split(',')[1]}"
    verify_signature("new", header, BODY, TOLERANCE, NOW)
    verify_signature("old", header, BODY, TOLERANCE, NOW)


def test_the_slack_message_has_a_fallback_text_and_escaped_blocks() -> None:
    body = slack_body(alert(customer_id="cus_1", code="api_key_expired"), "acme")
    assert "Stripe API key invalid" in body["text"]
    assert body["blocks"][0]["text"]["text"] == "Stripe API key invalid"
    assert body["blocks"][1]["text"]["text"] == "401 &lt;from&gt; Stripe &amp; co"
    assert [f["text"] for f in body["blocks"][2]["fields"]] == [
        "*customer_id*\ncus_1",
        "*code*\napi_key_expired",
    ]


def test_more_than_ten_fields_are_split_across_slack_sections() -> None:
    body = slack_body(alert(**{f"f{i}": str(i) for i in range(12)}), "acme")
    assert [len(b["fields"]) for b in body["blocks"] if "fields" in b] == [10, 2]


def test_the_generic_body_carries_a_stable_id_for_receivers_to_dedupe() -> None:
    document = json.loads(generic_body(alert(), tenant_id="acme", key="acme:cfg:1", now=NOW))
    assert (
        document["id"] == "acme:cfg:1"
        and document["tenant_id"] == "acme"
        and document["kind"] == "engineering"
    )
