"""Whatever arrives, the Stripe module answers with events or with its own two errors, never with a crash."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.providers.stripe import (
    PayloadError,
    SignatureError,
    SignatureReason,
    normalize,
    parse_envelope,
    verify,
)

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"
EVENTS = sorted(path.stem for path in FIXTURES.glob("*.json") if path.stem != "signature_vector")
SECRET = "whsec_property_5tQ2vN8c"
NOW = 1_772_442_000

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "card", "customer", "cus_1", "issuer_declined"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside nested dicts and lists, the container paths included."""
    found = [prefix]
    children = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    )
    for key, child in children:
        found.extend(paths(child, (*prefix, key)))
    return found


def replaced(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    *parents, last = path
    node: Any = document
    for key in parents:
        node = node[key]
    node[last] = value
    return document


def normalized_or_refused(body: bytes) -> None:
    try:
        normalize(parse_envelope(body))
    except PayloadError as exc:
        assert exc.reason


@given(body=st.binary(max_size=300), signature=st.none() | st.text(max_size=120), now=st.integers(0, 2**40))
def test_arbitrary_bytes_and_headers_only_ever_fail_verification_with_a_signature_error(
    body: bytes, signature: str | None, now: int
) -> None:
    try:
        verify(body, signature, [SECRET], 300, now=now)
    except SignatureError as exc:
        assert exc.reason
    else:  # pragma: no cover - would need a forged HMAC
        raise AssertionError("an unsigned body verified")


@given(
    timestamp=st.integers(0, 10**12 - 1),
    fields=st.lists(
        st.sampled_from(["v0=00", "v1=abc", "t=1", "x=y", "", "v1", "t", "=", "v1=a=b"]), max_size=4
    ),
)
def test_headers_shaped_like_the_scheme_only_ever_fail_with_a_signature_error(
    timestamp: int, fields: list[str]
) -> None:
    body = b'{"id": "evt_1"}'
    mac = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    header = ",".join([f"t={timestamp}", *fields, f"v1={mac}"])
    expected = None
    if timestamp < NOW - 300:
        expected = SignatureReason.STALE
    if "t" in fields or "v1" in fields:
        expected = SignatureReason.MALFORMED_HEADER
    try:
        verify(body, header, [SECRET], 300, now=NOW)
    except SignatureError as exc:
        assert exc.reason == expected
    else:
        assert expected is None


@given(text=st.text(max_size=200), secrets_before=st.lists(st.text(max_size=10), max_size=2))
def test_any_utf8_body_signed_by_the_documented_scheme_verifies(text: str, secrets_before: list[str]) -> None:
    body = text.encode("utf-8")
    mac = hmac.new(SECRET.encode(), f"{NOW}.".encode() + body, hashlib.sha256).hexdigest()
    verify(body, f"t={NOW},v1={mac}", [*secrets_before, SECRET], 300, now=NOW)


@given(body=st.binary(max_size=400))
def test_arbitrary_bytes_only_ever_fail_parsing_with_a_payload_error(body: bytes) -> None:
    normalized_or_refused(body)


@settings(max_examples=300)
@given(name=st.sampled_from(EVENTS), data=st.data())
def test_any_field_of_a_real_event_replaced_by_any_json_gives_events_or_a_payload_error(
    name: str, data: st.DataObject
) -> None:
    event = fixture(name)
    path = data.draw(st.sampled_from([p for p in paths(event) if p]))
    body = json.dumps(replaced(event, path, data.draw(json_values))).encode()
    normalized_or_refused(body)
