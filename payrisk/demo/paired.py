"""Common random numbers for a fair comparison of recovery approaches on one population.

The simulator seeds each charge decision by (seed, invoice id, attempt). Invoice ids come from one counter
shared with charges and events, so once one approach retries, the next renewals get other ids than in a run
that does not retry, and the same customer would meet other luck. `PairedModel` reseeds each decision by
(seed, customer, the customer's n-th invoice, attempt) instead: every approach sees the same renewal
declines, and the same draw for its k-th attempt on them; only timing and choices differ.
"""

from __future__ import annotations

import dataclasses
import random
import threading

from simulator.outcomes import ChargeContext, Outcome, OutcomeModel


class PairedModel:
    def __init__(self, inner: OutcomeModel, seed: int) -> None:
        self.inner, self.seed = inner, seed
        self.name = f"paired:{inner.name}"
        self._invoices: dict[str, dict[str, int]] = {}  # customer → invoice id → ordinal
        self._lock = threading.Lock()

    def ordinal(self, customer: str, invoice: str) -> int:
        """The invoice's position among the customer's invoices, in the order they were first charged."""
        with self._lock:
            seen = self._invoices.setdefault(customer, {})
            return seen.setdefault(invoice, len(seen))

    def decide(self, ctx: ChargeContext) -> Outcome:
        n = self.ordinal(ctx.invoice.customer, ctx.invoice.id)
        rng = random.Random(f"{self.seed}:{ctx.invoice.customer}:{n}:{ctx.attempt}")
        return self.inner.decide(dataclasses.replace(ctx, rng=rng))
