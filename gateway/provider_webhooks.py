"""`POST /webhooks/{provider}[/{tenant}]` for every registered provider (gateway/providers/registry.py), and the
endpoint checks some providers make with a GET. Same contract as the Stripe route: verify over the raw bytes →
store durably (group commit) → answer → hand off after commit. A delivery may carry several provider events
(Adyen batches notification items); each is stored, deduplicated and handed off on its own."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from gateway.ingest import Delivery
from gateway.limits import nul_free
from gateway.problems import ProblemError
from gateway.providers import registry
from gateway.providers.base import PayloadError, SignatureError
from gateway.providers.credentials import ProviderCredentials
from gateway.webhooks import _event_json, _printable, _read_body, store_and_hand_off

if TYPE_CHECKING:
    from gateway.platform import Platform

log = structlog.get_logger("payrisk.gateway")


async def provider_webhook(request: Request) -> Response:
    name = request.path_params["provider"]
    provider = _provider(name)
    platform: Platform = request.app.state.platform
    tenant_id = await _tenant(request, platform)
    body = await _read_body(request, platform.settings.gateway.max_body_bytes)
    credentials = await _credentials(request).of(tenant_id, provider)
    signed = registry.SignedRequest(body, {k.lower(): v for k, v in request.headers.items()}, time.time())
    try:
        events = provider.read(signed, credentials)
    except SignatureError as exc:
        platform.metrics.unverified(tenant_id, name, exc.reason)
        log.warning("webhook.unverified", tenant=tenant_id, provider=name, reason=exc.reason)
        raise ProblemError(400, "invalid-signature", "Invalid signature", exc.reason) from None
    except PayloadError as exc:
        raise ProblemError(400, "invalid-body", "Body is not a webhook event", _printable(exc.reason)) from None
    tenant = await platform.tenants.get(tenant_id)
    assert tenant is not None
    headers = {k: v for k, v in request.headers.items() if k in provider.kept_headers}
    receipts = []
    for event in events:
        delivery = _delivery(tenant_id, name, event, body, headers)
        delivery.redis_namespace = tenant.redis_namespace
        stored = await store_and_hand_off(platform, delivery)
        receipts.append({"id": event.id, "duplicate": stored.duplicate, "status": delivery.status,
                         "delivery_id": stored.delivery_id})
    if provider.accepted is not None:
        return PlainTextResponse(provider.accepted)
    return Response(orjson.dumps({"received": True, "events": receipts}), media_type="application/json")


async def provider_challenge(request: Request) -> Response:
    """A provider's endpoint check (Braintree: `GET ?bt_challenge=…` → `public_key|signature`)."""
    provider = _provider(request.path_params["provider"])
    if provider.challenge is None:
        raise ProblemError(405, "method-not-allowed", "Method Not Allowed", "this provider sends POST only")
    tenant_id = await _tenant(request, request.app.state.platform)
    credentials = await _credentials(request).of(tenant_id, provider)
    challenge = request.query_params.get("bt_challenge", "")
    try:
        return PlainTextResponse(provider.challenge(challenge, credentials))
    except SignatureError as exc:
        raise ProblemError(400, "invalid-signature", "Cannot answer the challenge", exc.reason) from None
    except PayloadError as exc:
        raise ProblemError(400, "invalid-challenge", "Invalid challenge", exc.reason) from None


def _provider(name: str) -> registry.WebhookProvider:
    provider = registry.get(name)
    if provider is None:
        raise ProblemError(404, "unknown-provider", "Unknown provider", f"no webhook endpoint for provider {name!r}")
    return provider


async def _tenant(request: Request, platform: Platform) -> str:
    tenant_id = str(request.path_params.get("tenant", "default"))
    if await platform.tenants.get(tenant_id) is None:
        raise ProblemError(404, "unknown-tenant", "Unknown tenant", f"tenant {tenant_id!r} does not exist")
    return tenant_id


def _credentials(request: Request) -> ProviderCredentials:
    state = request.app.state
    found: ProviderCredentials | None = getattr(state, "provider_credentials", None)
    if found is None:
        platform = state.platform
        found = state.provider_credentials = ProviderCredentials(platform.db, platform.settings, state.access.keyring)
    return found


def _delivery(tenant_id: str, provider: str, event: registry.ProviderEvent, body: bytes,
              headers: dict[str, str]) -> Delivery:
    if not nul_free([event.id, event.type]):
        raise ProblemError(400, "invalid-body", "Body is not a webhook event",
                           "the event id or type contains a NUL character (U+0000)")
    customer = event.customer_id if nul_free(event.customer_id) else None
    delivery = Delivery(tenant_id, provider, event.id, event.type, customer, body, headers, "received")
    try:
        events = event.normalize()
    except PayloadError as exc:
        return _quarantined(delivery, exc.reason)
    except ValueError as exc:  # pydantic's ValidationError: a field of the wrong shape in a verified event
        return _quarantined(delivery, f"{event.type} {event.id}: {str(exc).splitlines()[0][:200]}")
    if not events:
        delivery.status, delivery.status_reason = "ignored", (
            f"{event.type} about no customer: nothing to recover" if event.used and customer is None else
            f"{event.type} changes no recovery" if event.used else f"event type {event.type} is not used")
        return delivery
    delivery.events = [_event_json(e) for e in events]
    if not nul_free(delivery.events):
        delivery.events = []
        return _quarantined(delivery, "a field contains a NUL character (U+0000), which cannot be stored")
    delivery.customer_id = events[0].customer_id
    return delivery


def _quarantined(delivery: Delivery, reason: str) -> Delivery:
    delivery.status, delivery.status_reason = "quarantined", _printable(reason)
    return delivery


