"""Standard Webhooks signatures (standardwebhooks.com): `webhook-id`, `webhook-timestamp` and `webhook-signature`
headers; `v1,` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{raw body}")), the key being the base64 after
`whsec_`; several space-separated signatures and several secrets while rotating; a timestamp tolerance."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from enum import StrEnum

from gateway.providers.base import SignatureError


class GenericSignatureReason(StrEnum):
    NO_SECRET = "no generic webhook secret is configured for this tenant"
    BAD_SECRET = "a configured generic webhook secret is not whsec_ followed by base64"
    MISSING_HEADER = "the webhook-id, webhook-timestamp or webhook-signature header is missing"
    MALFORMED_HEADER = "webhook-timestamp is not a Unix time"
    MISMATCH = "no v1 signature matches the body for any configured secret"
    STALE = "webhook-timestamp is outside the tolerance"


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one secret (what a relay sends)."""
    digest = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(body: bytes, headers: Mapping[str, str], secrets: Sequence[str], tolerance: int, now: float) -> str:
    """The message id once a signature matches; SignatureError otherwise."""
    usable = [s for s in secrets if s.strip()]
    if not usable:
        raise SignatureError(GenericSignatureReason.NO_SECRET)
    msg_id, stamp, given = (headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not msg_id or not stamp or not given:
        raise SignatureError(GenericSignatureReason.MISSING_HEADER)
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise SignatureError(GenericSignatureReason.MALFORMED_HEADER)
    offered = {part.split(",", 1)[1] for part in given.split() if part.startswith("v1,")}
    expected = {sign(secret, msg_id, int(stamp), body).split(",", 1)[1] for secret in usable}
    if not any(hmac.compare_digest(o.encode(), e.encode()) for o in offered for e in expected):
        raise SignatureError(GenericSignatureReason.MISMATCH)
    if abs(now - int(stamp)) > tolerance:
        raise SignatureError(GenericSignatureReason.STALE)
    return msg_id


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(GenericSignatureReason.BAD_SECRET) from None
