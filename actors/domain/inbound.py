"""Canonical inbound events: what a provider told us, in one vocabulary for every provider.

Gateways normalize provider webhooks into these frozen models; the customer's recovery machine consumes
them. Amounts are integers in minor units; currencies are lower-case ISO codes; times are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class InboundKind(StrEnum):
    """What happened at the provider, independent of the provider's own event names."""

    PAYMENT_FAILED = "payment_failed"  # an invoice payment attempt failed
    PAYMENT_SUCCEEDED = "payment_succeeded"  # the invoice is paid (by us, the provider or out of band)
    DECLINE_DETAILS = "decline_details"  # decline codes for an attempt, arriving on their own event
    ACTION_REQUIRED = "action_required"  # the attempt needs customer authentication (SCA)
    SUBSCRIPTION_UPDATED = "subscription_updated"
    SUBSCRIPTION_DELETED = "subscription_deleted"
    PAYMENT_METHOD_UPDATED = "payment_method_updated"  # a new, attached, set-up or updated payment method
    CUSTOMER_UPDATED = "customer_updated"  # the customer object as it is now (its default instrument, tenure)
    INVOICE_VOIDED = "invoice_voided"
    INVOICE_UNCOLLECTIBLE = "invoice_uncollectible"


class DeclineInfo(BaseModel):
    """Every code a provider gave about one failed attempt. All optional: providers send subsets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    error_type: str | None = None  # Stripe error `type`: card_error, api_error, ...
    error_code: str | None = None  # Stripe `code` / `failure_code`
    decline_code: str | None = None
    advice_code: str | None = None  # Stripe advice: do_not_try_again, try_again_later, confirm_card_data
    network_advice_code: str | None = None  # Mastercard Merchant Advice Code, e.g. "03", "21", "24"
    network_decline_code: str | None = None  # raw ISO 8583 response code, e.g. "51"
    outcome_type: str | None = None  # Stripe charge.outcome.type: issuer_declined, blocked, ...
    outcome_reason: str | None = None  # Stripe charge.outcome.reason, e.g. highest_risk_level
    network_status: str | None = None
    risk_level: str | None = None
    http_status: int | None = None
    message: str | None = None
    card_brand: str | None = None  # visa, mastercard, amex, ...
    card_fingerprint: str | None = None
    card_country: str | None = None


class InboundEvent(BaseModel):
    """One normalized provider event. `provider_event_id` is the dedupe key (with tenant and provider)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: InboundKind
    provider: str
    provider_event_id: str
    provider_event_type: str
    occurred_at: datetime
    customer_id: str
    invoice_id: str | None = None
    payment_intent_id: str | None = None
    charge_id: str | None = None
    subscription_id: str | None = None
    payment_method_id: str | None = None
    amount_due: int | None = None
    amount_paid: int | None = None
    currency: str | None = None
    attempt_count: int | None = None
    next_payment_attempt: datetime | None = None
    hosted_invoice_url: str | None = None
    billing_reason: str | None = None
    subscription_status: str | None = None
    customer_email: str | None = None
    decline: DeclineInfo | None = None
    #: The instrument the provider said was the default before this change (`previous_attributes`), when it said.
    previous_payment_method_id: str | None = None
    #: Since when the business has had this customer: the provider customer's `created`, or a subscription's start.
    customer_since: datetime | None = None
    #: The invoice says no charge was made for this failed attempt (`charge: null` in the shapes that have the
    #: field): nothing reached the card, typically because the payment needs the customer (SCA).
    no_charge_made: bool | None = None
    #: Our own retry attempt's idempotency key when the provider echoes it (Stripe `request.idempotency_key`).
    request_idempotency_key: str | None = None
    #: The attempt this event reports was made by the provider's own retry feature (Braintree's retries, Adyen Auto
    #: Rescue, Paddle's dunning): it is written to the attempt ledger so the card's network budget counts it.
    provider_attempt: bool | None = None
