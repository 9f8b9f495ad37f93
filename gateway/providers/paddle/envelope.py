"""The Paddle Billing envelope: `{"event_id", "event_type", "occurred_at", "notification_id", "data"}`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from gateway.providers.base import PayloadError
from gateway.providers.stripe.fields import Obj, required_str


@dataclass(frozen=True, slots=True)
class PaddleEnvelope:
    id: str
    type: str
    occurred_at: datetime
    data: Obj


def parse_envelope(raw_body: bytes) -> PaddleEnvelope:
    try:
        doc = orjson.loads(raw_body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"body is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
        raise PayloadError("body is not a Paddle event (no data object)")
    occurred = required_str(doc, "occurred_at", "event field occurred_at")
    try:
        at = datetime.fromisoformat(occurred)
    except ValueError:
        raise PayloadError("event field occurred_at is not an ISO time") from None
    if at.tzinfo is None:
        raise PayloadError("event field occurred_at has no offset")
    return PaddleEnvelope(required_str(doc, "event_id", "event field event_id"),
                          required_str(doc, "event_type", "event field event_type"), at.astimezone(UTC), doc["data"])
