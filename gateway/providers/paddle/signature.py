"""`Paddle-Signature: ts=…;h1=…` checked with the official `paddle-python-sdk` (`PaddleSignature`: HMAC-SHA256 of
`{ts}:{raw body}` keyed with the whole `pdl_ntfset_…` secret; several `h1` and several secrets while rotating).
The age is checked here against an injectable clock; Paddle's SDK default tolerance is 5 seconds."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from paddle_billing.Notifications.PaddleSignature import PaddleSignature
from paddle_billing.Notifications.Secret import Secret

from gateway.providers.base import SignatureError


class PaddleSignatureReason(StrEnum):
    NO_SECRET = "no Paddle webhook secret is configured for this tenant"
    MISSING_HEADER = "the Paddle-Signature header is missing"
    MALFORMED_HEADER = "the Paddle-Signature header is not ts=…;h1=…"
    BODY_NOT_UTF8 = "the body is not UTF-8, so Paddle did not sign it"
    MISMATCH = "no h1 signature matches the body for any configured secret"
    STALE = "the signature timestamp is outside the tolerance"


def verify(raw_body: bytes, header: str | None, secrets: Sequence[str], tolerance: int, now: float) -> None:
    usable = [Secret(s) for s in secrets if s.strip()]
    if not usable:
        raise SignatureError(PaddleSignatureReason.NO_SECRET)
    if not header:
        raise SignatureError(PaddleSignatureReason.MISSING_HEADER)
    try:
        timestamp, hashes = PaddleSignature.parse(header)
    except ValueError:
        raise SignatureError(PaddleSignatureReason.MALFORMED_HEADER) from None
    if timestamp <= 0 or not hashes.get("h1"):
        raise SignatureError(PaddleSignatureReason.MALFORMED_HEADER)
    try:
        body = raw_body.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureError(PaddleSignatureReason.BODY_NOT_UTF8) from None
    try:
        matched = PaddleSignature().verify(header, body, usable)
    except ConnectionRefusedError:  # the SDK's way of saying that no secret of a list matched
        matched = False
    if not matched:
        raise SignatureError(PaddleSignatureReason.MISMATCH)
    if abs(now - timestamp) > tolerance:
        raise SignatureError(PaddleSignatureReason.STALE)
