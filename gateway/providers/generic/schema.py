"""payrisk's own webhook event (the generic endpoint's body), published as JSON Schema in
docs/schemas/generic-webhook-event.schema.json. A relay in front of any provider sends one event per request."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EventType = Literal["payment.failed", "payment.succeeded", "payment_method.updated", "subscription.canceled",
                    "invoice.voided"]


class GenericDecline(BaseModel):
    """What the provider said about a failed attempt. `code` is payrisk's generic decline vocabulary (the rows of
    actors/domain/classification/tables/generic.json); the raw network codes are classified by network rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    code: str | None = Field(default=None, max_length=100, description="generic decline code, e.g. insufficient_funds")
    provider_code: str | None = Field(default=None, max_length=100, description="the provider's own code, kept raw")
    network_decline_code: str | None = Field(default=None, max_length=100, description="ISO 8583 response, e.g. 51")
    network_advice_code: str | None = Field(default=None, max_length=100, description="Mastercard MAC, e.g. 03")
    card_brand: str | None = Field(default=None, max_length=40, description="visa, mastercard, amex, ...")
    card_fingerprint: str | None = Field(default=None, max_length=200, description="stable card identity")
    message: str | None = Field(default=None, max_length=500)


class GenericEvent(BaseModel):
    """One event; its id is the `webhook-id` header (the dedupe key), its customer is `generic:<customer_id>`."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="payrisk generic webhook event")
    type: EventType
    occurred_at: datetime
    customer_id: str = Field(min_length=1, max_length=200)
    invoice_id: str | None = Field(default=None, min_length=1, max_length=200)
    subscription_id: str | None = Field(default=None, max_length=200)
    amount: int | None = Field(default=None, ge=0, description="minor units")
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    customer_email: str | None = Field(default=None, max_length=320)
    payment_method_id: str | None = Field(default=None, max_length=200)
    hosted_invoice_url: str | None = Field(default=None, max_length=2000)
    provider_attempt: bool = Field(default=False, description="the provider's own automatic retry made this attempt")
    decline: GenericDecline | None = None
