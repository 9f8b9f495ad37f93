"""The simulator's internal state: one mutable record per Stripe object (rendered to JSON by `render`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from simulator.outcomes import Outcome


@dataclass(slots=True)
class Customer:
    id: str
    created: datetime
    email: str | None = None
    name: str | None = None
    country: str = "US"
    utc_offset_hours: float = 0.0  # for the customer's local hour and day of month
    default_payment_method: str | None = None  # invoice_settings.default_payment_method
    default_source: str | None = None  # a `card_…` source (the legacy Sources API)
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def local(self, moment: datetime) -> datetime:
        return moment + timedelta(hours=self.utc_offset_hours)


@dataclass(slots=True)
class PaymentMethod:
    id: str
    created: datetime
    brand: str
    funding: str
    country: str
    fingerprint: str
    last4: str
    exp_month: int
    exp_year: int
    customer: str | None = None
    forced: str | None = None  # "succeed" or a decline_code every charge gets (test cards, /_sim/cards)
    source: bool = False  # a legacy card source (`card_…`, object "card") rather than a PaymentMethod
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Subscription:
    id: str
    customer: str
    created: datetime
    amount: int
    currency: str
    current_period_start: datetime
    current_period_end: datetime
    status: str = "active"
    default_payment_method: str | None = None
    default_source: str | None = None
    canceled_at: datetime | None = None
    latest_invoice: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Charge:
    id: str
    created: datetime
    invoice: str | None  # None for a one-off PaymentIntent's charge
    customer: str | None  # None for a one-off payment of no customer
    payment_intent: str
    payment_method: str
    amount: int
    currency: str
    outcome: Outcome
    description: str | None = None


@dataclass(slots=True)
class PaymentIntent:
    id: str
    created: datetime
    invoice: str | None  # None for a one-off PaymentIntent (`POST /v1/payment_intents`)
    customer: str | None
    amount: int
    currency: str
    status: str = "requires_payment_method"
    latest_charge: str | None = None
    last_error: Outcome | None = None
    last_error_charge: str | None = None  # None when no charge was made (authentication required)
    last_payment_method: str | None = None
    charges: list[str] = field(default_factory=list)  # oldest first
    description: str | None = None
    setup_future_usage: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    # one-off PaymentIntents only (an invoice's attempts are counted on the invoice):
    attempts_made: int = 0
    first_failed_at: datetime | None = None
    last_decline: tuple[str, str] | None = None  # (payment method, decline_code) of the latest failure


@dataclass(slots=True)
class Invoice:
    id: str
    customer: str
    created: datetime
    amount_due: int
    currency: str
    billing_reason: str
    subscription: str | None = None
    status: str = "draft"
    number: str | None = None
    amount_paid: int = 0
    attempt_count: int = 0
    attempted: bool = False
    payment_intent: str | None = None
    charges: list[str] = field(default_factory=list)
    attempts_made: int = 0  # every attempt, manual or automatic, charged or stopped for authentication
    first_failed_at: datetime | None = None
    last_decline: tuple[str, str] | None = None  # (payment method, decline_code) of the latest failure
    next_payment_attempt: datetime | None = None
    smart_retries_done: int = 0
    paid_at: datetime | None = None
    description: str | None = None
    items: list[str] = field(default_factory=list)  # the invoice items (`ii_…`) it was built from
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class InvoiceItem:
    """A line to bill: pending (`invoice` None) until an invoice takes it in, or added to a draft directly."""

    id: str
    customer: str
    created: datetime
    amount: int
    currency: str
    quantity: int = 1
    description: str | None = None
    invoice: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class SetupIntent:
    id: str
    created: datetime
    customer: str | None
    payment_method: str | None
    usage: str = "off_session"
    status: str = "requires_confirmation"
    metadata: dict[str, str] = field(default_factory=dict)
