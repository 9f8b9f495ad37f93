"""The charge ledger: every charge attempt the simulator executed, so "charged twice" is directly checkable."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class LedgerEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    at: datetime
    charge: str | None  # None: the attempt stopped for authentication (SCA) before any charge; no money moved
    invoice: str  # "" for a one-off PaymentIntent (no invoice); kept a string for the ledger's readers
    customer: str  # "" for a one-off payment of no customer
    payment_method: str
    amount: int
    currency: str
    idempotency_key: str | None  # None for the simulator's own automatic attempts
    source: str  # "api" (invoice pay, PaymentIntent create/confirm), "automatic" (renewal) or "smart_retry"
    attempt: int  # the invoice's (or the one-off PaymentIntent's) n-th attempt, counting every kind
    outcome: str  # "succeeded" | "declined"
    code: str | None = None
    decline_code: str | None = None
    advice_code: str | None = None
    network_advice_code: str | None = None
    network_decline_code: str | None = None
    outcome_type: str | None = None
    payment_intent: str | None = None  # the invoice's PaymentIntent, or the one-off PaymentIntent
    api_key: str | None = None  # the API key of the request that made the attempt; None for automatic attempts


class Ledger:
    """Append-only and thread-safe."""

    def __init__(self) -> None:
        self._entries: list[LedgerEntry] = []
        self._lock = threading.Lock()

    def append(self, entry: LedgerEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    def since(self, index: int) -> list[LedgerEntry]:
        """The entries appended after the first `index` (a reader that keeps its place reads only what is new)."""
        with self._lock:
            return self._entries[index:]

    def entries(self, invoice: str | None = None, payment_intent: str | None = None) -> list[LedgerEntry]:
        with self._lock:
            return [
                e
                for e in self._entries
                if invoice in (None, e.invoice) and payment_intent in (None, e.payment_intent)
            ]

    def successes(self, invoice: str) -> int:
        return sum(1 for e in self.entries(invoice) if e.outcome == "succeeded")

    def double_charges(self) -> dict[str, int]:
        """Invoices (or one-off PaymentIntents, by their `pi_…` id) charged successfully more than once → how
        many times. Must stay empty."""
        counts = Counter(e.invoice or e.payment_intent for e in self.entries() if e.outcome == "succeeded")
        return {str(paid): n for paid, n in counts.items() if n > 1}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
