"""`POST /webhooks/{provider}[/{tenant}]`: verify → store durably → answer → hand off after commit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response

from gateway.ingest import Delivery, Stored
from gateway.limits import nul_free
from gateway.problems import ProblemError
from gateway.providers import stripe as stripe_provider

if TYPE_CHECKING:
    from gateway.platform import Platform

log = structlog.get_logger("payrisk.gateway")

_KEPT_HEADERS = ("stripe-signature", "content-type", "user-agent", "content-length")


async def stripe_webhook(request: Request) -> Response:
    platform: Platform = request.app.state.platform
    tenant_id = request.path_params.get("tenant", "default")
    tenant = await platform.tenants.get(tenant_id)
    if tenant is None:
        raise ProblemError(404, "unknown-tenant", "Unknown tenant", f"tenant {tenant_id!r} does not exist")
    body = await _read_body(request, platform.settings.gateway.max_body_bytes)
    try:
        stripe_provider.verify(body, request.headers.get("stripe-signature"), tenant.stripe_secrets,
                               platform.settings.stripe.tolerance_seconds)
    except stripe_provider.SignatureError as exc:
        platform.metrics.unverified(tenant_id, "stripe", exc.reason)
        log.warning("webhook.unverified", tenant=tenant_id, provider="stripe", reason=exc.reason)
        raise ProblemError(400, "invalid-signature", "Invalid signature", exc.reason) from None
    delivery = stripe_delivery(tenant_id, body, {k: v for k, v in request.headers.items() if k in _KEPT_HEADERS})
    delivery.redis_namespace = tenant.redis_namespace
    stored = await store_and_hand_off(platform, delivery)
    return Response(orjson.dumps({
        "received": True, "duplicate": stored.duplicate, "status": delivery.status,
        "delivery_id": stored.delivery_id,
    }), media_type="application/json")


async def unknown_provider(request: Request) -> Response:
    provider = request.path_params["provider"]
    raise ProblemError(404, "unknown-provider", "Unknown provider", f"no webhook endpoint for provider {provider!r}")


async def store_and_hand_off(platform: Platform, delivery: Delivery) -> Stored:
    """Store `delivery` durably (group commit, deduplicated), then queue it for its customer's shard when it is
    new and recovery uses it. Returns once it is committed."""
    stored = await platform.ingest.submit(delivery)
    _hand_off(platform, delivery, stored)
    return stored


async def store_and_hand_off_many(platform: Platform, deliveries: list[Delivery]) -> list[Stored]:
    """A burst already complete (the demo's webhooks of one simulated hour): stored together, in order, without
    waiting for more to join the group commit, then handed off in that order and sent to the shards at once."""
    stored = await platform.ingest.submit_many(deliveries)
    for delivery, one in zip(deliveries, stored, strict=True):
        _hand_off(platform, delivery, one)
    platform.dispatcher.flush_now()
    return stored


def _hand_off(platform: Platform, delivery: Delivery, stored: Stored) -> None:
    platform.metrics.delivery(delivery.provider, "duplicate" if stored.duplicate else delivery.status)
    if not stored.duplicate and delivery.status == "received":
        platform.dispatcher.submit(delivery.tenant_id, stored.delivery_id, delivery.customer_id, delivery.events)


def stripe_delivery(tenant_id: str, body: bytes, headers: dict[str, str]) -> Delivery:
    """The delivery a verified Stripe webhook body makes: its status (received, ignored, quarantined) and the
    normalized events. A body that is not a webhook event at all: ProblemError 400."""
    try:
        envelope = stripe_provider.parse_envelope(body)
    except stripe_provider.PayloadError as exc:
        raise ProblemError(400, "invalid-body", "Body is not a webhook event", _printable(exc.reason)) from None
    # JSON can carry a NUL only as the escape \u0000 (orjson refuses a raw one): without it, nothing parsed from
    # this body holds one, and the walks below are skipped
    nul_possible = b"\\u0000" in body
    if nul_possible and not nul_free([envelope.id, envelope.type]):  # the dedupe key itself cannot be stored
        raise ProblemError(400, "invalid-body", "Body is not a webhook event",
                           "the event id or type contains a NUL character (U+0000)")
    customer = stripe_provider.customer_id_of(envelope)
    delivery = Delivery(tenant_id, "stripe", envelope.id, envelope.type,
                        customer if not nul_possible or nul_free(customer) else None, body, headers, "received")
    try:
        events = stripe_provider.normalize(envelope)
    except stripe_provider.PayloadError as exc:
        return _quarantined(delivery, exc.reason)
    if not events:
        used = envelope.type in stripe_provider.EVENT_TYPES
        delivery.status, delivery.status_reason = "ignored", (
            f"{envelope.type} about no customer: nothing to recover" if used else
            f"event type {envelope.type} is not used")
        return delivery
    delivery.events = [_event_json(e) for e in events]
    if nul_possible and (not nul_free(delivery.events) or not nul_free(customer)):
        # kept with its raw bytes (replayable after a fix) but never handed to a customer: PostgreSQL text and
        # jsonb cannot hold U+0000, so applying it could only fail, again and again
        delivery.events = []
        return _quarantined(delivery, "a field contains a NUL character (U+0000), which cannot be stored")
    delivery.customer_id = events[0].customer_id
    return delivery


def _quarantined(delivery: Delivery, reason: str) -> Delivery:
    delivery.status, delivery.status_reason = "quarantined", _printable(reason)
    return delivery


def _printable(reason: str) -> str:
    return reason.replace("\x00", "\\u0000")


def _event_json(event: Any) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude_none=True)  # type: ignore[no-any-return]


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise ProblemError(413, "body-too-large", "Body too large", f"body of {declared} bytes exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProblemError(413, "body-too-large", "Body too large", f"body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
