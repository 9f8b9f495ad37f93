"""What the recovery engine asks the notifier to send: outbox rows and their payloads, plus pure formatting.

The engine writes these payloads as outbox rows in its decision transaction; the notifier parses them here.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

#: ISO 4217 currencies whose minor unit is not 1/100 (Stripe's list for zero-decimal, ISO for three).
_ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
_THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])
_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "inr": "₹", "krw": "₩"}


class Template(StrEnum):
    """The four dunning emails."""

    PAYMENT_FAILED = "payment_failed"  # the payment failed; we will retry
    ACTION_REQUIRED = "action_required"  # update the card or authenticate, via the hosted link
    FINAL_NOTICE = "final_notice"  # the last retry is near; the subscription ends after it
    RECOVERED = "recovered"  # the payment went through


class Branding(BaseModel):
    """The tenant's name and contacts, shown on every email."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    support_email: str = Field(pattern=r"^[^@\s<>]+@[^@\s<>]+$")
    logo_url: AnyHttpUrl | None = None


class EmailPayload(BaseModel):
    """An outbox `email` row's payload."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    template: Template
    to: str = Field(pattern=r"^[^@\s<>]+@[^@\s<>]+$")
    customer_id: str
    customer_name: str | None = None
    invoice_id: str
    amount_due: int = Field(ge=0)  # minor units
    currency: str = Field(min_length=3, max_length=3)
    hosted_invoice_url: AnyHttpUrl | None = None  # http(s) only: never a javascript: link in a mail
    next_attempt_at: datetime | None = None
    timezone: str | None = None  # IANA name
    branding: Branding


class AlertPayload(BaseModel):
    """An outbox `alert` row's payload."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["engineering", "fraud", "first_failure", "spike", "dead_letter"]
    title: str = Field(min_length=1)
    text: str
    fields: dict[str, str] = {}
    severity: Literal["info", "warning", "critical"] = "warning"


class OutboxRow(BaseModel):
    """One claimed outbox row, as the dispatcher hands it over."""

    model_config = ConfigDict(frozen=True, extra="ignore")  # tolerate extra columns from `SELECT *`

    outbox_id: int
    tenant_id: str
    topic: Literal["email", "alert"]
    idempotency_key: str
    stream_id: str | None = None
    payload: dict[str, Any]
    attempts: int = Field(default=0, ge=0)

    @property
    def global_key(self) -> str:
        """The idempotency key qualified by tenant: unique across the whole installation."""
        return f"{self.tenant_id}:{self.idempotency_key}"


def minor_unit_digits(currency: str) -> int:
    """Decimal places of `currency`'s minor unit."""
    code = currency.lower()
    if code in _ZERO_DECIMAL:
        return 0
    return 3 if code in _THREE_DECIMAL else 2


def format_amount(amount: int, currency: str) -> str:
    """`1234, "usd"` → `$12.34`; `500, "jpy"` → `¥500`; `1234, "chf"` → `12.34 CHF`."""
    digits = minor_unit_digits(currency)
    sign = "-" if amount < 0 else ""
    number = f"{abs(amount) / 10**digits:,.{digits}f}"
    symbol = _SYMBOLS.get(currency.lower())
    if symbol is None:
        return f"{sign}{number} {currency.upper()}"
    return f"{sign}{symbol}{number}"


def format_local_time(moment: datetime, zone: ZoneInfo) -> str:
    """`Tuesday 4 March 2025, 10:00 CET` in the customer's zone (locale-independent English)."""
    local = moment.astimezone(zone)
    return f"{local:%A} {local.day} {local:%B %Y, %H:%M} {local.tzname()}"


def subject_for(template: Template, brand: str, amount: str) -> str:
    """The email subject line."""
    subjects = {
        Template.PAYMENT_FAILED: f"Your {amount} payment to {brand} failed — we will retry",
        Template.ACTION_REQUIRED: f"Action needed: confirm your {amount} payment to {brand}",
        Template.FINAL_NOTICE: f"Final notice: your {amount} payment to {brand} is overdue",
        Template.RECOVERED: f"Thank you — your {amount} payment to {brand} went through",
    }
    return subjects[template]
