"""All objects of one simulated Stripe account, by id."""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.records import (
    Charge,
    Customer,
    Invoice,
    InvoiceItem,
    PaymentIntent,
    PaymentMethod,
    SetupIntent,
    Subscription,
)


@dataclass(slots=True)
class State:
    customers: dict[str, Customer] = field(default_factory=dict)
    payment_methods: dict[str, PaymentMethod] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    invoices: dict[str, Invoice] = field(default_factory=dict)
    invoice_items: dict[str, InvoiceItem] = field(default_factory=dict)
    payment_intents: dict[str, PaymentIntent] = field(default_factory=dict)
    charges: dict[str, Charge] = field(default_factory=dict)
    setup_intents: dict[str, SetupIntent] = field(default_factory=dict)
