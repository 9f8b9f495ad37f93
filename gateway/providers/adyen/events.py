"""Adyen notification items → canonical InboundEvents. The field map (reference/adyen.md):

| Adyen | canonical |
|---|---|
| `merchantReference` | `invoice_id` (the merchant's invoice / order reference; retries reuse it) |
| `additionalData.shopperReference` (or `recurring.shopperReference`) | the customer (stream `adyen:<ref>`) |
| `additionalData.refusalReasonCode`, else `reason` (the refusal text, an alias in the table) | `decline_code` |
| `additionalData.refusalReasonRaw` (`"05 : Do not honour"`) | `network_decline_code` |
| `additionalData.merchantAdviceCode` (`"01 : New account information available"`) | `network_advice_code` |
| `paymentMethod` (`visa`, `mc`, `amex`…) | `card_brand` (`mc` → `mastercard`) |
| `additionalData.paymentAccountReference`, else the stored method | `card_fingerprint` (network budget) |
| `recurring.recurringDetailReference` / `tokenization.storedPaymentMethodId` | `payment_method_id` |
| `additionalData.recurringProcessingModel` | `billing_reason` |
| `additionalData.metadata.payrisk_attempt` | `request_idempotency_key` (our own retry, echoed) |
| `amount.value` / `amount.currency` | minor units / lower-case currency |

`AUTHORISATION` with `success=false` is a failed payment, with `success=true` a paid one (never read the code
without `success`). `RECURRING_CONTRACT` (and Account Updater results) is a stored card created or updated.
`CANCELLATION` voids the invoice. `AUTORESCUE` ended Adyen's own retries (success: paid; failure: the case is
payrisk's again); `AUTORESCUE_NEXT_ATTEMPT` and `retry.attempt*` data are Adyen's own attempts, which count
against the card's network budget. `REFUND` and other modifications are stored and answered, never a recovery.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from actors.domain.inbound import DeclineInfo, InboundEvent, InboundKind
from actors.domain.streams import customer_key
from gateway.providers.adyen.envelope import AdyenItem
from gateway.providers.base import PayloadError
from gateway.providers.stripe.fields import Obj, integer, mapping, text

PROVIDER = "adyen"
_BRANDS = {"mc": "mastercard", "visa": "visa", "amex": "amex", "discover": "discover", "maestro": "maestro",
           "cartebancaire": "cartes_bancaires", "jcb": "jcb", "diners": "diners"}


def shopper_of(item: AdyenItem) -> str | None:
    extra = item.additional
    return text(extra.get("shopperReference")) or text(extra.get("recurring.shopperReference"))


def customer_of(item: AdyenItem) -> str | None:
    shopper = shopper_of(item)
    return customer_key(PROVIDER, shopper) if shopper else None


def normalize(item: AdyenItem) -> list[InboundEvent]:
    handler = _HANDLERS.get(item.event_code)
    return handler(item) if handler is not None and customer_of(item) else []


def _event(item: AdyenItem, kind: InboundKind, **fields: Any) -> InboundEvent:
    customer = customer_of(item)
    if customer is None:
        raise PayloadError(f"{item.event_code} {item.key}: additionalData.shopperReference is missing")
    return InboundEvent(kind=kind, provider=PROVIDER, provider_event_id=item.key,
                        provider_event_type=f"{item.event_code}.{'true' if item.success else 'false'}",
                        occurred_at=_when(item.item.get("eventDate")), customer_id=customer,
                        request_idempotency_key=text(item.additional.get("metadata.payrisk_attempt")), **fields)


def _payment(item: AdyenItem) -> dict[str, Any]:
    amount = mapping(item.item.get("amount"))
    invoice = text(item.item.get("merchantReference"))
    if invoice is None:
        raise PayloadError(f"{item.event_code} {item.key}: merchantReference is missing")
    value = integer(amount.get("value"))
    if value is None and isinstance(amount.get("value"), str) and amount["value"].isdigit():
        value = int(amount["value"])
    currency = text(amount.get("currency"))
    return {"invoice_id": invoice, "charge_id": text(item.item.get("pspReference")), "amount_due": value,
            "currency": currency.lower() if currency else None, "payment_method_id": stored_method(item.additional),
            "billing_reason": text(item.additional.get("recurringProcessingModel")),
            "customer_email": text(item.additional.get("shopperEmail"))}


def stored_method(extra: Obj) -> str | None:
    return (text(extra.get("recurring.recurringDetailReference"))
            or text(extra.get("tokenization.storedPaymentMethodId")) or text(extra.get("storedPaymentMethodId")))


def decline_of(item: AdyenItem) -> DeclineInfo:
    extra = item.additional
    brand = text(item.item.get("paymentMethod"))
    return DeclineInfo(
        decline_code=text(extra.get("refusalReasonCode")) or text(item.item.get("reason")),
        network_decline_code=text(extra.get("refusalReasonRaw")),
        network_advice_code=text(extra.get("merchantAdviceCode")),
        message=text(item.item.get("reason")),
        card_brand=_BRANDS.get(brand or "", brand),
        card_fingerprint=text(extra.get("paymentAccountReference")) or stored_method(extra),
        card_country=text(extra.get("issuerCountry")),
    )


def _authorisation(item: AdyenItem) -> list[InboundEvent]:
    fields = _payment(item)
    if item.success:
        return [_event(item, InboundKind.PAYMENT_SUCCEEDED, amount_paid=fields["amount_due"], **fields)]
    return [_event(item, InboundKind.PAYMENT_FAILED, decline=decline_of(item), attempt_count=_retries(item), **fields)]


def _retries(item: AdyenItem) -> int | None:
    """How many attempts Adyen's own retry made for this payment (`retry.attemptN.*`), when it says."""
    numbers = [int(k.split(".")[1][7:]) for k in item.additional if k.startswith("retry.attempt")
               and k.split(".")[1][7:].isdigit()]
    return max(numbers) if numbers else None


def _recurring_contract(item: AdyenItem) -> list[InboundEvent]:
    if not item.success:
        return []
    method = stored_method(item.additional) or text(item.item.get("pspReference"))
    return [_event(item, InboundKind.PAYMENT_METHOD_UPDATED, payment_method_id=method)]


def _cancellation(item: AdyenItem) -> list[InboundEvent]:
    if not item.success:
        return []
    return [_event(item, InboundKind.INVOICE_VOIDED, invoice_id=_payment(item)["invoice_id"])]


def _autorescue(item: AdyenItem) -> list[InboundEvent]:
    """Adyen's rescue process ended: paid (success) or given up (a failure payrisk may pick up again)."""
    fields = _payment(item)
    if item.success:
        return [_event(item, InboundKind.PAYMENT_SUCCEEDED, amount_paid=fields["amount_due"], **fields)]
    return [_event(item, InboundKind.PAYMENT_FAILED, decline=decline_of(item), **fields)]


def _next_attempt(item: AdyenItem) -> list[InboundEvent]:
    """Adyen's own retry failed and another is scheduled: the failure's codes, counted as Adyen's attempt."""
    fields = _payment(item)
    return [_event(item, InboundKind.DECLINE_DETAILS, decline=decline_of(item), attempt_count=_retries(item),
                   provider_attempt=True, **fields)]


_HANDLERS: dict[str, Callable[[AdyenItem], list[InboundEvent]]] = {
    "AUTHORISATION": _authorisation,
    "RECURRING_CONTRACT": _recurring_contract,
    "CANCELLATION": _cancellation,
    "AUTORESCUE": _autorescue,
    "AUTORESCUE_NEXT_ATTEMPT": _next_attempt,
}
#: stored and answered, but never a recovery event: a refund or a capture changes no failed payment
STORED_ONLY = frozenset({"REFUND", "CAPTURE", "CANCEL_OR_REFUND", "REFUND_FAILED", "CAPTURE_FAILED", "CHARGEBACK"})
EVENT_CODES = frozenset(_HANDLERS)


def _when(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
    raise PayloadError("eventDate is missing or not an ISO time with an offset")
