"""`Stripe-Signature` verification over the raw body bytes, with the official SDK checking the HMAC."""

from __future__ import annotations

import time
from collections.abc import Sequence
from enum import StrEnum

import stripe

from gateway.providers.base import SignatureError


class SignatureReason(StrEnum):
    """Why a delivery failed verification: a fixed set, so the reasons can label metrics."""

    NO_SECRET = "no Stripe webhook secret is configured for this tenant"
    MISSING_HEADER = "the Stripe-Signature header is missing"
    MALFORMED_HEADER = "the Stripe-Signature header is not ASCII or has a t or v1 field without a value"
    NO_TIMESTAMP = "the Stripe-Signature header has no valid timestamp (t=...)"
    NO_V1 = "the Stripe-Signature header has no v1 signature"
    BODY_NOT_UTF8 = "the body is not UTF-8, so Stripe did not sign it"
    MISMATCH = "no v1 signature matches the body for any configured secret"
    STALE = "the signature timestamp is older than the tolerance"


def verify(
    raw_body: bytes,
    signature_header: str | None,
    secrets: Sequence[str],
    tolerance: int,
    now: int | None = None,
) -> None:
    """Return if a `v1` signature over the raw body matches any secret and is at most `tolerance` s old.

    The SDK checks the HMAC (constant time); the age is checked here against `now` (default: the wall clock)
    so that tests can pin the clock. A future timestamp is accepted, as the SDK does. Any secret may match:
    while an endpoint secret is rolled, both values are live. Raises SignatureError, and nothing else.
    """
    usable = [secret for secret in secrets if secret.strip()]
    if not usable:
        raise SignatureError(SignatureReason.NO_SECRET)
    timestamp = _signed_timestamp(signature_header)
    payload = _utf8(raw_body)
    if not any(_sdk_accepts(payload, signature_header, secret) for secret in usable):
        raise SignatureError(SignatureReason.MISMATCH)
    if timestamp < (time.time() if now is None else now) - tolerance:
        raise SignatureError(SignatureReason.STALE)


def _signed_timestamp(header: str | None) -> int:
    """The header's first `t`, once the header is known to hold what the SDK reads (parsed as it parses)."""
    if not header:
        raise SignatureError(SignatureReason.MISSING_HEADER)
    if not header.isascii():  # the SDK's constant-time compare raises TypeError on non-ASCII signatures
        raise SignatureError(SignatureReason.MALFORMED_HEADER)
    fields = [field.split("=", 2) for field in header.split(",")]
    if any(len(field) < 2 and field[0] in ("t", "v1") for field in fields):  # the SDK cannot extract these
        raise SignatureError(SignatureReason.MALFORMED_HEADER)
    stamps = [field[1] for field in fields if field[0] == "t"]
    if not stamps or not _is_unix_time(stamps[0]):
        raise SignatureError(SignatureReason.NO_TIMESTAMP)
    if not any(field[0] == "v1" for field in fields):
        raise SignatureError(SignatureReason.NO_V1)
    return int(stamps[0])


def _is_unix_time(value: str) -> bool:
    return 0 < len(value) <= 12 and value.isdigit()


def _utf8(raw_body: bytes) -> str:
    """The body as the SDK wants it; lossless, because Stripe signs UTF-8 and nothing else decodes."""
    try:
        return raw_body.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureError(SignatureReason.BODY_NOT_UTF8) from None


def _sdk_accepts(payload: str, header: str | None, secret: str) -> bool:
    try:
        stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=None)
    except stripe.SignatureVerificationError:
        return False
    return True
