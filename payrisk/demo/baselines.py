"""The reference approaches, run in-process on their own simulators (same population, seed and luck).

- **no retry**: a declined renewal stays unpaid.
- **fixed schedule**: the naive dunning many billing systems ship: retry every failed invoice 8, 16 and 24
  days after its first failure, whatever the decline said.
- **fixed 8 tries in 14 days**: Stripe's recommended schedule (days 1, 2, 4, 6, 8, 10, 12, 14), same blindness.

Retries call the simulator's pay path directly (no HTTP, no platform), each with its own idempotency key, at
the scheduled simulated time; renewals due before a retry run first.
"""

from __future__ import annotations

import contextlib
import heapq
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from payrisk.demo.ledger import score
from payrisk.demo.paired import PairedModel
from payrisk.demo.summary import Approach
from simulator.catalog import is_hard
from simulator.core import Simulator, SimulatorSettings
from simulator.errors import StripeApiError
from simulator.events import RequestRef
from simulator.models import load_model

NO_RETRY: tuple[timedelta, ...] = ()
FIXED_SCHEDULE = (timedelta(days=8), timedelta(days=16), timedelta(days=24))
#: Stripe's recommended default: 8 tries within 2 weeks, on days 1, 2, 4, 6, 8, 10, 12 and 14 after the failure.
EIGHT_IN_FOURTEEN = tuple(timedelta(days=d) for d in (1, 2, 4, 6, 8, 10, 12, 14))


def paired_simulator(settings: SimulatorSettings) -> Simulator:
    """A simulator whose decisions are paired across approaches (see `payrisk.demo.paired`)."""
    return Simulator(settings, model=PairedModel(load_model(settings.model), settings.seed))


def run_schedule(
    name: str, settings: SimulatorSettings, days: int, delays: Sequence[timedelta], step: timedelta
) -> Approach:
    """Simulate `days` of renewals; retry each failed invoice `delays` after its first failure.

    Only the ledger is read: the simulator gets no webhook endpoint and keeps no events, so it renders none (the
    rendering was half of a baseline's time; the event ids are still drawn, so every other id stays the same)."""
    sim = paired_simulator(settings.model_copy(update={"webhook_url": None, "keep_events": False}))
    sim.outbox.reset_endpoints([])
    end = sim.now() + timedelta(days=days)
    due: list[tuple[datetime, str, int]] = []  # (when, invoice, attempt number)
    seen = 0
    while sim.now() < end:
        to = min(sim.now() + step, end)
        while due and due[0][0] <= to:
            at, invoice, n = heapq.heappop(due)
            sim.advance(at)
            _retry(sim, invoice, n)
        sim.advance(to)
        entries = sim.ledger.since(seen)
        for entry in entries:
            if entry.source == "automatic" and entry.outcome == "declined":
                for n, delay in enumerate(delays, start=1):
                    heapq.heappush(due, (entry.at + delay, entry.invoice, n))
        seen += len(entries)
    return score(name, sim.ledger_entries(), is_hard)


def _retry(sim: Simulator, invoice_id: str, n: int) -> None:
    """Pay the invoice if it is still open; a decline is recorded in the ledger, nothing else to do."""
    with sim.lock:
        if sim.billing.invoice(invoice_id).status != "open":
            return
        request = RequestRef(f"req_{uuid.uuid4().hex[:14]}", f"fixed:{invoice_id}:{n}")
        with contextlib.suppress(StripeApiError):
            sim.charging.pay(invoice_id, {}, request, source="api")
