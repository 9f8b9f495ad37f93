"""The Stripe event envelope: id, type, created, API version, data.object, the idempotency key."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from gateway.providers.base import PayloadError
from gateway.providers.stripe.fields import (
    MAX_UNIX_TIME,
    Obj,
    expandable_id,
    integer,
    mapping,
    required_str,
    text,
)


@dataclass(frozen=True, slots=True)
class StripeEnvelope:
    """The parts of a Stripe event payrisk reads; `obj` is `data.object` as parsed, never copied.

    A slotted dataclass rather than a pydantic model on purpose: validating `data.object` would rebuild the
    whole provider object on the hot path, and the normalizers read it field by field anyway.
    """

    id: str
    type: str
    created: int
    api_version: str | None
    obj: Obj
    previous_attributes: Obj
    request_idempotency_key: str | None


def parse_envelope(raw_body: bytes) -> StripeEnvelope:
    """Read the event envelope; raises PayloadError naming the field that is missing or wrong."""
    doc = _json_object(raw_body)
    data = mapping(doc.get("data"))
    obj = data.get("object")
    if not isinstance(obj, dict):
        raise PayloadError("event field data.object is missing or not an object")
    request = doc.get("request")  # an object since API 2017-05-25; a bare request id before
    return StripeEnvelope(
        id=required_str(doc, "id", "event field id"),
        type=required_str(doc, "type", "event field type"),
        created=_created(doc),
        api_version=text(doc.get("api_version")),
        obj=obj,
        previous_attributes=mapping(data.get("previous_attributes")),
        request_idempotency_key=text(mapping(request).get("idempotency_key")),
    )


def customer_id_of(envelope: StripeEnvelope) -> str | None:
    """The Stripe customer the event is about, read cheaply for routing before full normalization."""
    obj = envelope.obj
    if obj.get("object") == "customer":
        return text(obj.get("id"))
    return expandable_id(obj.get("customer"))


def _json_object(raw_body: bytes) -> Obj:
    try:
        doc = orjson.loads(raw_body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PayloadError("body is not a JSON object")
    return doc


def _created(doc: Obj) -> int:
    value = integer(doc.get("created"))
    if value is None or not 0 <= value <= MAX_UNIX_TIME:
        raise PayloadError("event field created is missing or not a Unix time")
    return value
