"""`Simulator`: one simulated Stripe account — state, outcome model, ledger, idempotency, faults, webhooks.

Usable in-process (tests, the demo) or behind the HTTP app (`simulator.app`). State changes happen under
`lock`, so the server thread and a caller's thread can both drive it.

Events are recorded in the account's default API version (`settings.api_version`, what `GET /v1/events` shows)
and rendered again, at the same moment, for each webhook endpoint that subscribes to them, in the endpoint's own
version and options (`simulator.endpoints`).
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from simulator import render
from simulator.billing import Billing
from simulator.catalog import forced_outcome
from simulator.charging import Charging
from simulator.clock import Clock, RealClock, SimClock, unix
from simulator.endpoints import DEFAULT_ENDPOINT, EndpointConfig, EndpointOptions, WebhookEndpoint
from simulator.events import Obj, Render, RequestRef
from simulator.expansion import expand
from simulator.faults import Faults, updated
from simulator.idempotency import IdempotencyStore
from simulator.ids import IdFactory
from simulator.intents import Intents
from simulator.ledger import Ledger, LedgerEntry
from simulator.models import load_model
from simulator.outcomes import OutcomeModel
from simulator.population import Population
from simulator.records import PaymentMethod
from simulator.state import State
from simulator.versions import valid_version, view_of
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
    #: The account's default version: the default webhook endpoint's version, the version of `GET /v1/events`,
    #: and of API responses to requests without a Stripe-Version header.
    api_version: str = "2026-10-28.endive"
    #: The default endpoint's (`webhook_url`) subscription and sender options.
    webhook_options: EndpointOptions = EndpointOptions()
    #: More endpoints, each with its own URL, version and options.
    webhook_endpoints: tuple[EndpointConfig, ...] = ()
    model: str = "default"
    smart_retries: bool = False
    smart_retry_days: tuple[float, ...] = SMART_RETRY_DAYS
    clock: str = Field(default="sim", pattern="^(sim|real)$")
    start: datetime = DEFAULT_START  # the simulated clock's start
    auto_deliver: bool = True  # a running server flushes due webhooks every `deliver_interval` seconds
    deliver_interval: float = 0.2
    faults: Faults = Faults()
    #: Keep every event for `GET /v1/events` and `events`. Off for a simulator nobody reads events from (the
    #: demo's baselines): with no webhook endpoint either, an event is then only its id, not rendered at all.
    keep_events: bool = True


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
        valid_version(s.api_version)
        self.outbox = WebhookOutbox(
            self._configured_endpoints(),
            self.clock,
            wall or RealClock(),
            random.Random(f"{s.seed}:webhooks"),
            lambda: self.faults,
        )
        self.fault_rng = random.Random(f"{s.seed}:faults")
        self.events: list[Obj] = []
        #: GET requests served, by (method, route template) and by (method, concrete path)
        self.api_reads: Counter[tuple[str, str]] = Counter()
        self.api_reads_by_path: Counter[tuple[str, str]] = Counter()
        #: every authenticated request, by (API key, method, route template)
        self.api_requests_by_key: Counter[tuple[str, str, str]] = Counter()
        self._build()

    def _build(self) -> None:
        s = self.settings
        self.state = State()
        self.ids = IdFactory(s.seed, s.id_namespace)
        self.billing = Billing(self.state, self.ids, self.clock, self.emit)
        self.charging = Charging(
            self.billing, self.model, self.ledger, s.seed, s.smart_retry_days if s.smart_retries else ()
        )
        self.intents = Intents(self.billing, self.charging)
        self.population = Population(self.billing, self.charging, s.seed)
        self.population.generate(s.customers)

    def emit(self, event_type: str, obj: Render, previous: Obj | None, req: RequestRef) -> None:
        """Record a Stripe event and queue one delivery per subscribed endpoint, each rendered now in the
        endpoint's version (and options)."""
        event_id, created = self.ids.new("evt"), unix(self.clock.now())  # the id even unkept: ids stay aligned
        targets = [ep for ep in self.outbox.endpoints() if ep.receives(event_type)]
        if not targets and not self.settings.keep_events:
            return
        rendered: dict[str, Obj] = {}

        def envelope(version: str, data: Obj, prev: Obj | None) -> Obj:
            request = (req.id, req.idempotency_key)
            return render.event(event_id, event_type, created, version, data, prev, request, len(targets))

        def plain(version: str) -> Obj:
            if version not in rendered:
                rendered[version] = obj(view_of(version))
            return rendered[version]

        record = envelope(self.settings.api_version, plain(self.settings.api_version), previous)
        self.events.append(record)
        for ep in targets:
            data = plain(ep.api_version)
            if ep.expand and data.get("object") == "invoice" and view_of(ep.api_version).pre_basil:
                data = self._expanded(obj(view_of(ep.api_version)), ep)
            prev = None if ep.omit_previous_attributes else previous
            self.outbox.enqueue(envelope(ep.api_version, data, prev), ep.id)

    def _expanded(self, invoice: Obj, ep: WebhookEndpoint) -> Obj:
        view = view_of(ep.api_version)
        return expand(invoice, ep.expand, lambda field, oid: render.by_id(self.state, field, oid, view), strict=False)

    # -- webhook endpoints -------------------------------------------------------------------------------------
    def _configured_endpoints(self) -> list[WebhookEndpoint]:
        s = self.settings
        default = WebhookEndpoint(
            id=DEFAULT_ENDPOINT,
            url=s.webhook_url,
            secret=s.webhook_secret,
            api_version=s.api_version,
            **s.webhook_options.model_dump(),
        )
        extra = [self._new_endpoint(cfg.model_dump(), n) for n, cfg in enumerate(s.webhook_endpoints, start=1)]
        return [default, *extra]

    def _new_endpoint(self, fields: dict[str, Any], n: int) -> WebhookEndpoint:
        ident = fields.get("id") or f"we_sim{n:04d}"
        secret = fields.get("secret") or "whsec_" + hashlib.sha256(f"{self.settings.seed}:{ident}".encode()).hexdigest()
        return WebhookEndpoint.model_validate(
            {
                **fields,
                "id": ident,
                "secret": secret,
                "api_version": fields.get("api_version") or self.settings.api_version,
            }
        )

    def webhook_endpoints(self) -> list[WebhookEndpoint]:
        return self.outbox.endpoints()

    def add_webhook_endpoint(self, url: str | None, **options: Any) -> WebhookEndpoint:
        """A new endpoint: `api_version` (default: the account's), `enabled_events`, `expand`,
        `omit_previous_attributes`, `secret` (default: generated; read it from the result), `id`."""
        with self.lock:
            existing = {ep.id for ep in self.outbox.endpoints()}
            n = len(existing)
            while f"we_sim{n:04d}" in existing:
                n += 1
            endpoint = self._new_endpoint({**options, "url": url}, n)
            if endpoint.id in existing:
                raise ValueError(f"a webhook endpoint {endpoint.id!r} exists already")
            self.outbox.set_endpoint(endpoint)
            return endpoint

    def update_webhook_endpoint(self, endpoint_id: str = DEFAULT_ENDPOINT, **patch: Any) -> WebhookEndpoint:
        """Change an endpoint's `url`, `api_version`, `enabled_events`, `expand`, `omit_previous_attributes` or
        `secret`. Deliveries already queued keep the form they were rendered in."""
        with self.lock:
            current = self.outbox.endpoint(endpoint_id)
            if current is None:
                raise KeyError(f"no webhook endpoint {endpoint_id!r}")
            endpoint = current.updated(patch)
            self.outbox.set_endpoint(endpoint)
            return endpoint

    def delete_webhook_endpoint(self, endpoint_id: str) -> bool:
        with self.lock:
            return self.outbox.remove_endpoint(endpoint_id)

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
        """Every charge on `pm_id` gets `outcome` ("succeed", "sca" for authentication required, or a
        decline_code); None returns it to the model."""
        with self.lock:
            forced = forced_outcome(outcome)  # unknown codes fail here, not at charge time
            self.billing.payment_method(pm_id).forced = forced

    def card_updater(
        self,
        pm_id: str,
        *,
        exp_month: int | None = None,
        exp_year: int | None = None,
        last4: str | None = None,
        outcome: str | None = "succeed",
    ) -> PaymentMethod:
        """The card account updater refreshed `pm_id` (a new expiry, by default three years on, or number):
        `payment_method.automatically_updated` (`customer.source.updated` for a card source), and the card is
        chargeable again (`outcome`, default "succeed"; None hands it back to the model)."""
        with self.lock:
            return self.billing.card_updater(
                pm_id, exp_month=exp_month, exp_year=exp_year, last4=last4, outcome=outcome
            )

    def double_charges(self) -> dict[str, int]:
        return self.ledger.double_charges()

    def ledger_entries(self, invoice: str | None = None, payment_intent: str | None = None) -> list[LedgerEntry]:
        """The ledger, optionally of one invoice or one PaymentIntent (one-off attempts have `invoice == ""`)."""
        return self.ledger.entries(invoice, payment_intent)

    async def flush(self, everything: bool = False) -> int:
        """Deliver due webhooks (all pending with `everything`); returns how many were accepted."""
        return await self.outbox.flush(everything)

    def reset(self) -> None:
        """Forget every object, charge, key, event, pending webhook and read count; webhook endpoints and faults
        return to the settings; regenerate the seeded population. The clock is not moved back (a simulated clock
        never runs backwards)."""
        with self.lock:
            self.ledger.clear()
            self.idempotency.clear()
            self.outbox.clear()
            self.outbox.reset_endpoints(self._configured_endpoints())
            self.events.clear()
            self.api_reads.clear()
            self.api_reads_by_path.clear()
            self.faults = self.settings.faults
            self._build()
