"""`POST /webhooks/generic/{tenant}`: payrisk's own event schema (`schema.GenericEvent`), signed in the Standard
Webhooks format with the tenant's secret, so a provider without an integration is connected by a small relay.
payrisk observes these customers unless a retry adapter exists for the relay's provider (none today)."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from actors.domain.inbound import DeclineInfo, InboundEvent, InboundKind
from actors.domain.streams import customer_key
from gateway.providers.base import PayloadError
from gateway.providers.generic.schema import GenericEvent
from gateway.providers.generic.signature import verify
from gateway.providers.registry import Credentials, ProviderEvent, SignedRequest, WebhookProvider

_KINDS = {"payment.failed": InboundKind.PAYMENT_FAILED, "payment.succeeded": InboundKind.PAYMENT_SUCCEEDED,
          "payment_method.updated": InboundKind.PAYMENT_METHOD_UPDATED,
          "subscription.canceled": InboundKind.SUBSCRIPTION_DELETED, "invoice.voided": InboundKind.INVOICE_VOIDED}


def read(request: SignedRequest, credentials: Credentials) -> list[ProviderEvent]:
    msg_id = verify(request.body, request.headers, list(credentials.get("generic_webhook_secrets") or ()),
                    int(credentials.get("generic_tolerance_seconds") or 300), request.now)
    try:
        event = GenericEvent.model_validate(orjson.loads(request.body))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        raise PayloadError(f"body is not a payrisk generic event: {str(exc).splitlines()[0][:200]}") from None
    if event.type != "payment_method.updated" and event.type != "subscription.canceled" and not event.invoice_id:
        raise PayloadError(f"{event.type} needs invoice_id")
    return [ProviderEvent(id=msg_id, type=event.type, customer_id=customer_key("generic", event.customer_id),
                          normalize=lambda: [_inbound(msg_id, event)], used=True)]


def _inbound(msg_id: str, e: GenericEvent) -> InboundEvent:
    d = e.decline
    # the provider's own code is kept verbatim in the message: the generic table classifies `code`, and an
    # unknown raw code of some other provider would only be noise in the unknown-code alerts
    message = " ".join(x for x in (f"[{d.provider_code}]" if d and d.provider_code else None, d.message if d else None)
                       if x) or None
    decline = DeclineInfo(error_code=d.code, network_decline_code=d.network_decline_code,
                          network_advice_code=d.network_advice_code, card_brand=d.card_brand,
                          card_fingerprint=d.card_fingerprint, message=message) if d else None
    return InboundEvent(
        kind=_KINDS[e.type], provider="generic", provider_event_id=msg_id, provider_event_type=e.type,
        occurred_at=e.occurred_at, customer_id=customer_key("generic", e.customer_id), invoice_id=e.invoice_id,
        subscription_id=e.subscription_id, amount_due=e.amount, amount_paid=e.amount if e.type == "payment.succeeded"
        else None, currency=e.currency.lower() if e.currency else None, customer_email=e.customer_email,
        payment_method_id=e.payment_method_id, hosted_invoice_url=e.hosted_invoice_url, decline=decline,
        provider_attempt=e.provider_attempt or None)


def _defaults(settings: Any) -> dict[str, Any]:
    return {"generic_webhook_secrets": list(settings.generic.webhook_secrets),
            "generic_tolerance_seconds": settings.generic.tolerance_seconds}


PROVIDER = WebhookProvider(
    name="generic", read=read, secrets=("generic_webhook_secrets",),
    list_secrets=frozenset({"generic_webhook_secrets"}),
    defaults=_defaults, observe_only=True,
    kept_headers=("webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "user-agent"))
