"""Paddle Billing webhooks (`POST /webhooks/paddle[/{tenant}]`), verified with `paddle-python-sdk`.

Paddle runs its own dunning (up to 7 retries over 30 days, then cancels), so payrisk only *observes* Paddle
customers: classification, analytics, alerts and shadow decisions; no charge and no email (`observe_only`).
"""

from __future__ import annotations

from typing import Any

from gateway.providers.paddle.envelope import parse_envelope
from gateway.providers.paddle.events import EVENT_TYPES, customer_of, normalize
from gateway.providers.paddle.signature import verify
from gateway.providers.registry import Credentials, ProviderEvent, SignedRequest, WebhookProvider


def read(request: SignedRequest, credentials: Credentials) -> list[ProviderEvent]:
    verify(request.body, request.headers.get("paddle-signature"), list(credentials.get("paddle_webhook_secrets") or ()),
           int(credentials.get("paddle_tolerance_seconds") or 5), request.now)
    env = parse_envelope(request.body)
    return [ProviderEvent(id=env.id, type=env.type, customer_id=customer_of(env), normalize=lambda: normalize(env),
                          used=env.type in EVENT_TYPES)]


def _defaults(settings: Any) -> dict[str, Any]:
    return {"paddle_webhook_secrets": list(settings.paddle.webhook_secrets),
            "paddle_tolerance_seconds": settings.paddle.tolerance_seconds}


PROVIDER = WebhookProvider(
    name="paddle", read=read, secrets=("paddle_webhook_secrets",), list_secrets=frozenset({"paddle_webhook_secrets"}),
    defaults=_defaults, kept_headers=("paddle-signature", "content-type", "user-agent", "content-length"),
    observe_only=True)
