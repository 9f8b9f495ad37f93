"""Adyen Standard webhooks (`POST /webhooks/adyen[/{tenant}]`): HMAC per item with the official `Adyen` library
(several keys while rotating), optional Basic auth, `[accepted]` as the answer, one provider event per item."""

from __future__ import annotations

from typing import Any

from gateway.providers.adyen.envelope import AdyenItem, parse_items
from gateway.providers.adyen.events import EVENT_CODES, customer_of, normalize
from gateway.providers.adyen.signature import check_basic_auth, verify_item
from gateway.providers.registry import Credentials, ProviderEvent, SignedRequest, WebhookProvider


def read(request: SignedRequest, credentials: Credentials) -> list[ProviderEvent]:
    """Basic auth first (when configured), then the envelope, then every item's HMAC: one bad item refuses the
    whole delivery, so Adyen retries it and nothing half-verified is stored."""
    check_basic_auth(request.headers.get("authorization"), credentials.get("adyen_webhook_basic_auth"))
    items = parse_items(request.body)
    for item in items:
        verify_item(item.item, list(credentials.get("adyen_hmac_keys") or ()))
    return [_event(item) for item in items]


def _event(item: AdyenItem) -> ProviderEvent:
    return ProviderEvent(id=item.key, type=item.event_code, customer_id=customer_of(item),
                         normalize=lambda: normalize(item), used=item.event_code in EVENT_CODES)


def _defaults(settings: Any) -> dict[str, Any]:
    return {"adyen_hmac_keys": list(settings.adyen.hmac_keys),
            "adyen_webhook_basic_auth": settings.adyen.webhook_basic_auth,
            "adyen_api_key": settings.adyen.api_key, "adyen_merchant_account": settings.adyen.merchant_account}


PROVIDER = WebhookProvider(
    name="adyen", read=read,
    secrets=("adyen_hmac_keys", "adyen_webhook_basic_auth", "adyen_api_key", "adyen_merchant_account"),
    list_secrets=frozenset({"adyen_hmac_keys"}), defaults=_defaults, accepted=b"[accepted]",
    executor="actors.executors.adyen:AdyenAdapter")
