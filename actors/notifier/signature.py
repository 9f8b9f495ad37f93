"""The signature on generic alert webhooks: HMAC-SHA256 over `f"{timestamp}.{body}"`.

Header: `Payrisk-Signature: t=<unix seconds>,v1=<hex digest>`. Several `v1=` entries may appear while a secret
is being rotated; one match is enough. The timestamp bounds replay: receivers reject it outside a tolerance.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

SIGNATURE_HEADER = "Payrisk-Signature"
IDEMPOTENCY_HEADER = "Payrisk-Idempotency-Key"


class SignatureError(ValueError):
    """A webhook signature header is missing, malformed, stale or does not match."""


def compute_signature(secret: str, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of `b"<timestamp>." + body` under `secret`."""
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The `Payrisk-Signature` header value for `body` sent at `timestamp` (unix seconds)."""
    return f"t={timestamp},v1={compute_signature(secret, body, timestamp)}"


def parse_header(header: str) -> tuple[int, list[str]]:
    """`t=..,v1=..[,v1=..]` → (timestamp, signatures). Unknown schemes are ignored."""
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise SignatureError("signature header needs t=<unix seconds> and at least one v1=<hex>")
    return timestamp, signatures


def verify_signature(secret: str, header: str, body: bytes, tolerance: timedelta, now: datetime) -> None:
    """Pass if `header` signs `body` with `secret` within `tolerance` of `now`; else raise SignatureError."""
    timestamp, signatures = parse_header(header)
    if abs(now.timestamp() - timestamp) > tolerance.total_seconds():
        raise SignatureError("signature timestamp is outside the tolerance (stale or replayed)")
    expected = compute_signature(secret, body, timestamp)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise SignatureError("no signature matches the body")
