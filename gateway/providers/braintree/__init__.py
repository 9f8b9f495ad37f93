"""Braintree webhooks (`POST /webhooks/braintree[/{tenant}]`, and `GET` with `bt_challenge` for the endpoint
check): parsed and verified with the official `braintree` SDK."""

from __future__ import annotations

from typing import Any

from gateway.providers.braintree.events import KINDS, customer_of, event_id, normalize
from gateway.providers.braintree.signature import answer_challenge, parse
from gateway.providers.registry import Credentials, ProviderEvent, SignedRequest, WebhookProvider


def read(request: SignedRequest, credentials: Credentials) -> list[ProviderEvent]:
    payload, notification = parse(request.body, credentials)
    kind = str(getattr(notification, "kind", ""))
    return [ProviderEvent(id=event_id(payload), type=kind, customer_id=customer_of(notification),
                          normalize=lambda: normalize(notification, payload), used=kind in KINDS)]


def _defaults(settings: Any) -> dict[str, Any]:
    return {"braintree_merchant_id": settings.braintree.merchant_id,
            "braintree_public_key": settings.braintree.public_key,
            "braintree_private_key": settings.braintree.private_key,
            "braintree_environment": settings.braintree.environment}


PROVIDER = WebhookProvider(
    name="braintree", read=read,
    secrets=("braintree_merchant_id", "braintree_public_key", "braintree_private_key"),
    defaults=_defaults, executor="actors.executors.braintree:BraintreeAdapter", challenge=answer_challenge)
