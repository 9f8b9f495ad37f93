"""All objects of one simulated Stripe account, by id."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime

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

#: subscription statuses that renew
BILLABLE = ("active", "past_due")
#: the kinds of `DueIndex` entries, in the order one due time runs them: renewals, then Smart Retries
RENEWAL, SMART_RETRY = 0, 1


class DueIndex:
    """A heap of (due time, kind, id): every renewal and Smart Retry that may be waiting on the clock.

    Whoever sets a subscription's `current_period_end` or status, or an invoice's `next_payment_attempt`, calls
    `renewal` / `smart_retry` (billing.py, charging.py). An entry is a hint, checked against the record when
    popped — a subscription canceled or rolled since, an invoice paid since, is skipped — so only additions need
    telling. Finding what is due costs O(log n) instead of a scan of every subscription and invoice."""

    __slots__ = ("_heap",)

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, str]] = []

    def renewal(self, sub: Subscription) -> None:
        heapq.heappush(self._heap, (sub.current_period_end, RENEWAL, sub.id))

    def smart_retry(self, inv: Invoice) -> None:
        if inv.next_payment_attempt is not None:
            heapq.heappush(self._heap, (inv.next_payment_attempt, SMART_RETRY, inv.id))

    def pop_due(self, state: State, limit: datetime) -> tuple[datetime, list[Subscription], list[Invoice]] | None:
        """The earliest due time ≤ `limit` still current, with its subscriptions and invoices (each by id), taken
        off the index; None when nothing is due by `limit`."""
        heap = self._heap
        while heap and heap[0][0] <= limit:
            at = heap[0][0]
            subs: dict[str, Subscription] = {}
            invoices: dict[str, Invoice] = {}
            while heap and heap[0][0] == at:
                record = _current(state, *heapq.heappop(heap))
                if isinstance(record, Subscription):
                    subs[record.id] = record
                elif record is not None:
                    invoices[record.id] = record
            if subs or invoices:
                return at, sorted(subs.values(), key=lambda s: s.id), sorted(invoices.values(), key=lambda i: i.id)
        return None

    def next_due(self, state: State) -> datetime | None:
        """The earliest due time still current (stale entries are dropped on the way)."""
        heap = self._heap
        while heap:
            if _current(state, *heap[0]) is not None:
                return heap[0][0]
            heapq.heappop(heap)
        return None


def _current(state: State, at: datetime, kind: int, key: str) -> Subscription | Invoice | None:
    """The record an index entry names when it is still due at `at`; None for a stale entry."""
    if kind == RENEWAL:
        sub = state.subscriptions.get(key)
        return sub if sub is not None and sub.current_period_end == at and sub.status in BILLABLE else None
    inv = state.invoices.get(key)
    return inv if inv is not None and inv.next_payment_attempt == at and inv.status == "open" else None


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
    #: what waits on the clock (renewals, Smart Retries), earliest first; see `DueIndex`
    due: DueIndex = field(default_factory=DueIndex)
    #: subscription id → its invoices' ids, in creation order (an invoice's subscription never changes)
    subscription_invoices: dict[str, list[str]] = field(default_factory=dict)

    def add_invoice(self, inv: Invoice) -> None:
        self.invoices[inv.id] = inv
        if inv.subscription is not None:
            self.subscription_invoices.setdefault(inv.subscription, []).append(inv.id)

    def invoices_of(self, subscription_id: str) -> list[Invoice]:
        """The subscription's invoices, oldest first (without scanning every invoice)."""
        return [self.invoices[i] for i in self.subscription_invoices.get(subscription_id, ())]

