"""`Simulator`: one simulated Stripe account — state, outcome model, ledger, idempotency, faults, webhooks.

Usable in-process (tests, the demo) or behind the HTTP app (`simulator.app`). State changes happen under
`lock`, so the server thread and a caller's thread can both drive it.
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from simulator import render
from simulator.billing import Billing
from simulator.catalog import SUCCEED, declined
from simulator.charging import Charging
from simulator.clock import Clock, RealClock, SimClock, unix
from simulator.events import Obj, RequestRef
from simulator.faults import Faults, updated
from simulator.idempotency import IdempotencyStore
from simulator.ids import IdFactory
from simulator.ledger import Ledger, LedgerEntry
from simulator.models import load_model
from simulator.outcomes import OutcomeModel
from simulator.population import Population
from simulator.state import State
from simulator.webhooks import WebhookOutbox

DEFAULT_START = datetime(2026, 3, 1, tzinfo=UTC)
#: Stripe's recommended Smart Retries default: 8 tries within 2 weeks (days after the first failure).
SMART_RETRY_DAYS = (1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0)


class SimulatorSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    api_keys: tuple[str, ...] = ("sk_test_simulator",)
    webhook_url: str | None = None
    webhook_secret: str = "whsec_simulator_local_only"
    seed: int = 0
    id_namespace: str = ""  # mixed into every id: reruns with one seed against one platform need distinct ids
    customers: int = 0  # generated at start (and again on reset)
    #: Webhook payload version (the endpoint's version); API responses follow the request's Stripe-Version.
    api_version: str = "2026-10-28.endive"
    model: str = "default"
    smart_retries: bool = False
    smart_retry_days: tuple[float, ...] = SMART_RETRY_DAYS
    clock: str = Field(default="sim", pattern="^(sim|real)$")
    start: datetime = DEFAULT_START  # the simulated clock's start
    auto_deliver: bool = True  # a running server flushes due webhooks every `deliver_interval` seconds
    deliver_interval: float = 0.2
    faults: Faults = Faults()


class Simulator:
    def __init__(
        self,
        settings: SimulatorSettings | None = None,
        *,
        clock: Clock | None = None,
        wall: Clock | None = None,
        model: OutcomeModel | None = None,
    ) -> None:
        self.settings = s = settings or SimulatorSettings()
        self.clock: Clock = clock or (SimClock(s.start) if s.clock == "sim" else RealClock())
        self.lock = threading.RLock()
        self.model = model or load_model(s.model)
        self.faults = s.faults
        self.ledger = Ledger()
        self.idempotency = IdempotencyStore()
        self.outbox = WebhookOutbox(
            s.webhook_url,
            s.webhook_secret,
            self.clock,
            wall or RealClock(),
            random.Random(f"{s.seed}:webhooks"),
            lambda: self.faults,
        )
        self.fault_rng = random.Random(f"{s.seed}:faults")
        self.events: list[Obj] = []
        self._build()

    def _build(self) -> None:
        s = self.settings
        self.state = State()
        self.ids = IdFactory(s.seed, s.id_namespace)
        self.billing = Billing(self.state, self.ids, self.clock, self.emit, render.shape_of(s.api_version))
        self.charging = Charging(
            self.billing, self.model, self.ledger, s.seed, s.smart_retry_days if s.smart_retries else ()
        )
        self.population = Population(self.billing, self.charging, s.seed)
        self.population.generate(s.customers)

    def emit(self, event_type: str, obj: Obj, previous: Obj | None, req: RequestRef) -> None:
        """Record a Stripe event and queue its webhook delivery."""
        event = render.event(
            self.ids.new("evt"),
            event_type,
            unix(self.clock.now()),
            self.settings.api_version,
            obj,
            previous,
            (req.id, req.idempotency_key),
        )
        self.events.append(event)
        self.outbox.enqueue(event)

    # -- the control surface (also served under /_sim/) --------------------------------------------------------
    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, to: datetime) -> int:
        """Run renewals and Smart Retries due up to `to` (moving a simulated clock); returns how many ran."""
        with self.lock:
            return self.population.advance(to)

    def generate(self, n: int) -> list[str]:
        with self.lock:
            return self.population.generate(n)

    def set_faults(self, **patch: Any) -> Faults:
        with self.lock:
            self.faults = updated(self.faults, patch)
            return self.faults

    def force_card(self, pm_id: str, outcome: str | None) -> None:
        """Every charge on `pm_id` gets `outcome` ("succeed" or a decline_code); None returns it to the model."""
        with self.lock:
            if outcome is not None and outcome != SUCCEED:
                declined(outcome, with_network_advice=False)  # unknown codes fail here, not at charge time
            self.billing.payment_method(pm_id).forced = outcome

    def double_charges(self) -> dict[str, int]:
        return self.ledger.double_charges()

    def ledger_entries(self, invoice: str | None = None) -> list[LedgerEntry]:
        return self.ledger.entries(invoice)

    async def flush(self, everything: bool = False) -> int:
        """Deliver due webhooks (all pending with `everything`); returns how many were accepted."""
        return await self.outbox.flush(everything)

    def reset(self) -> None:
        """Forget every object, charge, key, event and pending webhook; regenerate the seeded population.
        The clock is not moved back (a simulated clock never runs backwards)."""
        with self.lock:
            self.ledger.clear()
            self.idempotency.clear()
            self.outbox.clear()
            self.events.clear()
            self.faults = self.settings.faults
            self._build()
