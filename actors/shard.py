"""Customer shard actors: each hosts many customers as virtual actors (single writer per customer).

A customer is activated from its checkpoint on first use and passivated when idle. Each decision is one
PostgreSQL transaction (events + checkpoint + timers + outbox + attempt intents + the delivery marked
applied). Ray may run a method twice after a restart (`max_task_retries=-1`), so every method is idempotent:
a delivery already applied, or a timer already fired, is skipped inside the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

import ray
import structlog

from actors.clock import make_clock
from actors.domain.case import customer_status, empty_state, evolve
from actors.domain.decide import decide_attempt_result, decide_details_fetched, decide_inbound, decide_timer
from actors.domain.decisions import ChargeRequest, Context, Decision, DetailsFetch
from actors.domain.machine import OPEN
from actors.domain.streams import STRIPE, provider_customer_id, provider_of
from actors.executors.runtime import ProviderRetries, provider_context, record_provider_attempts
from actors.metrics import EngineMetrics
from actors.persist import card_history, persist, record_outcome
from actors.placement import NAMESPACE, shard_name
from actors.planning import make_context_factory, tenant_classifier
from actors.provider_keys import ProviderKeys
from payrisk.logging import configure_logging
from payrisk.store import (
    ConcurrencyConflict,
    Database,
    StoreError,
    StoreUnavailable,
    checkpoints,
    deliveries,
    events,
    timers,
)

log = structlog.get_logger("payrisk.shard")

FETCH_TIMEOUT_SECONDS = 20.0  # the reader's own HTTP timeout is shorter; this bounds a lost pool call
OPEN_STATES = frozenset(s.value for s in OPEN)


class _Customer:
    __slots__ = ("version", "state", "used")

    def __init__(self, version: int, state: dict[str, Any]) -> None:
        self.version, self.state, self.used = version, state, time.monotonic()


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class CustomerShard:
    def __init__(self, index: int, config: dict[str, Any]) -> None:
        configure_logging(config.get("log_level", "info"), config.get("log_format"))
        self.index = index
        self.config = config
        self._db: Database | None = None
        self._active: OrderedDict[tuple[str, str], _Customer] = OrderedDict()
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._max_active = int(config.get("max_active", 50_000))
        self._clock = make_clock(config.get("clock", "real"))
        self._contexts = make_context_factory(config)
        self._keys = ProviderKeys(config)  # the tenant's own provider key, else STRIPE_API_KEY
        self._adapters: dict[str, Any] = {}
        self._retries = ProviderRetries(config)  # Adyen, Braintree, …: the registry's retry adapters
        self._readers: dict[str, Any] = {}
        self._classifiers: list[Any] | None = None
        self._next_classifier = 0
        self._background: set[asyncio.Task[None]] = set()
        self._incidents: dict[str, tuple[float, frozenset[str], str, dict[str, Any] | None]] = {}
        self._metrics = EngineMetrics(shard_name(index))
        self._occupancy_task: asyncio.Task[None] | None = None
        self.applied = 0
        self.fired = 0

    async def _database(self) -> Database:
        if self._db is None:
            self._db = Database(self.config["database_url"], max_size=int(self.config.get("pool_size", 4)))
            await self._db.open()
        return self._db

    def _lock(self, key: tuple[str, str]) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    # --------------------------------------------------------------------------------------------- activation

    async def _load(self, tenant_id: str, customer_id: str) -> _Customer:
        key = (tenant_id, customer_id)
        active = self._active.get(key)
        if active is not None:
            self._active.move_to_end(key)
            active.used = time.monotonic()
            return active
        db = await self._database()
        async with db.connection() as conn:
            cp = await checkpoints.load(conn, tenant_id, customer_id)
            state = cp.state if cp else empty_state(tenant_id, customer_id)
            version = cp.version if cp else 0
            for event in await events.load(conn, tenant_id, customer_id, version):
                state, version = evolve(state, event.event_type, event.payload), event.version
        customer = self._active[key] = _Customer(version, state)
        self._passivate()
        return customer

    def _passivate(self, idle_seconds: float = 900.0) -> None:
        """Forget idle customers (their state is in PostgreSQL); keep at most `max_active` in memory."""
        now = time.monotonic()
        while self._active and (len(self._active) > self._max_active
                                or next(iter(self._active.values())).used < now - idle_seconds):
            key, _ = self._active.popitem(last=False)
            lock = self._locks.get(key)
            if lock is not None and not lock.locked():
                del self._locks[key]

    # --------------------------------------------------------------------------------------------- commands

    async def apply_deliveries(self, items: list[dict[str, Any]]) -> list[str]:
        """Apply hand-offs `{tenant_id, delivery_id, customer_id, events}`; each delivery at most once.

        The batch shares one transaction (group commit: each customer's decisions stay whole, and all of them
        commit together); when that transaction fails, every item is applied again on its own.
        """
        if len(items) > 1:
            try:
                return await self._apply_batch(items)
            except StoreError as exc:  # a lost race or a deadlock: the per-item path decides each again
                log.info("batch.fallback", size=len(items), error=str(exc)[:200])
        results = await asyncio.gather(*(self._apply_one(item) for item in items), return_exceptions=True)
        return [_outcome(item, result) for item, result in zip(items, results, strict=True)]

    async def _apply_one(self, item: dict[str, Any]) -> str:
        tenant_id, customer_id = item["tenant_id"], item["customer_id"]
        structlog.contextvars.bind_contextvars(tenant=tenant_id, customer=customer_id, delivery=item["delivery_id"],
                                               request_id=item.get("request_id"))

        async def decide(conn: Any, state: dict[str, Any], ctx: Context) -> list[Decision] | None:
            return await _decide_delivery(conn, item, state, ctx)

        outcome = await self._decide(tenant_id, customer_id, decide)
        if outcome == "applied":
            self.applied += 1
            self._metrics.delivery_applied(waited=item.get("waited"))
        return outcome

    async def _apply_batch(self, items: list[dict[str, Any]]) -> list[str]:
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for item in items:
            groups.setdefault((item["tenant_id"], item["customer_id"]), []).append(item)
        outcomes: dict[int, str] = {}
        staged: dict[tuple[str, str], tuple[list[Decision], int]] = {}
        async with contextlib.AsyncExitStack() as locks:
            for key in sorted(groups):  # one global order: two batches never wait on each other in a cycle
                await locks.enter_async_context(self._lock(key))
            customers = {key: await self._load(*key) for key in groups}
            db = await self._database()
            now = await self._clock.now()
            async with db.transaction() as conn:
                for key, group in groups.items():
                    staged[key] = await self._stage(conn, key, customers[key], group, now, outcomes)
            for key, (decisions, version) in staged.items():  # committed: now the memory may follow
                if decisions:
                    customers[key].state, customers[key].version = decisions[-1].state, version
                self._observe(decisions)
        for key, (decisions, _) in staged.items():
            # a provider call logs under the request that caused it (the customer's latest in this batch)
            structlog.contextvars.bind_contextvars(tenant=key[0], customer=key[1],
                                                   request_id=groups[key][-1].get("request_id"))
            self._fetch_later(key[0], key[1], [f for d in decisions for f in d.fetches])
            for charge in (c for d in decisions for c in (*d.charges, *d.reconciles)):
                await self._charge(key[0], key[1], charge)
        applied = [item for item in items if outcomes[item["delivery_id"]] == "applied"]
        self.applied += len(applied)
        for item in applied:
            self._metrics.delivery_applied(waited=item.get("waited"))
        return [outcomes[item["delivery_id"]] for item in items]

    async def _stage(self, conn: Any, key: tuple[str, str], customer: _Customer, group: list[dict[str, Any]],
                     now: Any, outcomes: dict[int, str]) -> tuple[list[Decision], int]:
        """One customer's share of a batch, written in the batch's transaction."""
        tenant_id, customer_id = key
        ctx = await self._context(conn, tenant_id, customer, now)
        state, decisions = customer.state, []
        for item in group:
            made = await _decide_delivery(conn, item, state, ctx)
            outcomes[item["delivery_id"]] = "skipped" if made is None else "applied"
            if made:
                decisions += made
                state = made[-1].state
        return decisions, await persist(conn, tenant_id, customer_id, customer.version, decisions, now)

    async def fire_timers(self, timers: list[dict[str, Any]]) -> int:
        """Deliver claimed timers; a timer already fired or cancelled is a no-op. Returns how many fired."""
        results = await asyncio.gather(*(self._fire_one(t) for t in timers))
        return sum(results)

    async def _fire_one(self, timer: dict[str, Any]) -> bool:
        async def decide(conn: Any, state: dict[str, Any], ctx: Context) -> list[Decision] | None:
            if not await timers.mark_fired(conn, timer["timer_id"]):
                return None
            if "invoice_id" not in timer["payload"]:
                log.warning("timer.unknown", timer_id=timer["timer_id"], payload=timer["payload"])
                return []
            return [decide_timer(state, timer["payload"]["invoice_id"], timer["payload"], ctx)]

        outcome = await self._decide(timer["tenant_id"], timer["stream_id"], decide)
        self.fired += outcome == "applied"
        return outcome == "applied"

    async def update_profile(self, tenant_id: str, customer_id: str, profile: dict[str, Any],
                             request_id: str) -> str:
        """Record what the business says about the customer (segment inputs). Idempotent per `request_id`."""
        async def decide(conn: Any, state: dict[str, Any], ctx: Context) -> list[Decision] | None:
            if state.get("profile_request") == request_id:
                return None
            payload = {"profile": profile, "request_id": request_id, "at": ctx.now.isoformat()}
            return [Decision(state=evolve(state, "ProfileUpdated", payload), events=[("ProfileUpdated", payload)])]

        return await self._decide(tenant_id, customer_id, decide)

    async def operator_command(self, tenant_id: str, customer_id: str, command: dict[str, Any]) -> str:
        """An operator's command on one case (actors/domain/operator.py); returns `done: …` or `refused: …`.
        Idempotent per `command["request_id"]`: a repeated request answers the first outcome and does nothing."""
        from actors.domain.operator import OperatorCommand, decide_operator, outcome_of

        cmd = OperatorCommand(**command)

        async def decide(conn: Any, state: dict[str, Any], ctx: Context) -> list[Decision] | None:
            made = decide_operator(state, cmd, ctx)
            return None if made is None else [made]

        await self._decide(tenant_id, customer_id, decide)
        customer = await self._load(tenant_id, customer_id)
        return outcome_of(customer.state, cmd.request_id) or "refused: not recorded; try again"

    async def _settle(self, tenant_id: str, customer_id: str, charge: ChargeRequest, result: Any) -> None:
        async def decide(conn: Any, state: dict[str, Any], ctx: Context) -> list[Decision] | None:
            status = {"succeeded": "succeeded", "failed": "failed"}.get(result.outcome, "unknown")
            await record_outcome(conn, tenant_id, charge.idempotency_key, status, result.decline)
            return [decide_attempt_result(state, charge.invoice_id, charge.attempt_no, result.outcome,
                                          result.decline, ctx)]

        await self._decide(tenant_id, customer_id, decide)

    async def _decide(self, tenant_id: str, customer_id: str, decide: Any, retries: int = 3) -> str:
        """Load, decide (pure) and commit under the customer's lock; then run the charges it asked for."""
        key = (tenant_id, customer_id)
        for _ in range(retries):
            async with self._lock(key):
                customer = await self._load(tenant_id, customer_id)
                try:
                    charges = await self._commit(tenant_id, customer_id, customer, decide)
                except ConcurrencyConflict:
                    self._active.pop(key, None)  # another home wrote: reload and decide again
                    continue
            if charges is None:
                return "skipped"
            for charge in charges:
                await self._charge(tenant_id, customer_id, charge)
            return "applied"
        raise ConcurrencyConflict(f"customer {customer_id}: gave up after {retries} conflicting writes")

    async def _commit(self, tenant_id: str, customer_id: str, customer: _Customer, decide: Any
                      ) -> list[ChargeRequest] | None:
        db = await self._database()
        now = await self._clock.now()
        async with db.transaction() as conn:
            ctx = await self._context(conn, tenant_id, customer, now)
            decisions = await decide(conn, customer.state, ctx)
            if decisions is None:
                return None
            version = await persist(conn, tenant_id, customer_id, customer.version, decisions, now)
        if decisions:
            customer.state, customer.version = decisions[-1].state, version
        self._observe(decisions)
        self._fetch_later(tenant_id, customer_id, [f for d in decisions for f in d.fetches])
        return [c for d in decisions for c in (*d.charges, *d.reconciles)]

    async def _context(self, conn: Any, tenant_id: str, customer: _Customer, now: datetime) -> Context:
        history = await card_history(conn, tenant_id, _fingerprints(customer.state), now - timedelta(days=30))
        paused, mode, branding = await self._tenant_state(conn, tenant_id)
        await tenant_classifier(conn, tenant_id)  # the tenant's stored overrides, refreshed every few seconds
        ctx = await self._contexts(tenant_id, now, history, paused, mode, branding)
        ctx = dataclasses.replace(ctx, fetch_details=bool(await self._keys.for_tenant(conn, tenant_id)))
        return dataclasses.replace(ctx, **provider_context(ctx, customer.state["customer_id"]))

    # --------------------------------------------------------------------------------------------- API reads

    def _fetch_later(self, tenant_id: str, customer_id: str, fetches: list[DetailsFetch]) -> None:
        """After commit, outside the customer's lock: the classifier pool reads what the deliveries lacked."""
        for fetch in fetches:
            task = asyncio.get_running_loop().create_task(self._fetch(tenant_id, customer_id, fetch))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _fetch(self, tenant_id: str, customer_id: str, fetch: DetailsFetch) -> None:
        """One read, its answer decided as the customer's next event. A read that fails or is lost leaves the
        case to the webhooks and the classification timer (the last resort), never stuck."""
        request = dataclasses.asdict(fetch)
        try:
            pool = self._classifier()
            if pool is not None:
                call = pool.enrich.options(enable_task_events=False).remote(tenant_id, "stripe", customer_id, request)
                result = await asyncio.wait_for(call, FETCH_TIMEOUT_SECONDS)
            else:
                reader = await self._provider_reader(tenant_id)
                if reader is None:
                    return
                result = await asyncio.wait_for(asyncio.to_thread(reader.details, customer_id, request),
                                                FETCH_TIMEOUT_SECONDS)
        except Exception as exc:  # noqa: BLE001 - any failure here only means "no answer": the timer decides
            log.warning("details.fetch_failed", tenant=tenant_id, customer=customer_id, invoice=fetch.invoice_id,
                        error=f"{type(exc).__name__}: {exc}"[:300])
            return

        async def decide(conn: Any, state: dict[str, Any], ctx: Context) -> list[Decision] | None:
            return [decide_details_fetched(state, fetch.invoice_id, result, ctx)]

        try:
            await self._decide(tenant_id, customer_id, decide)
        except StoreError as exc:
            log.warning("details.apply_failed", tenant=tenant_id, customer=customer_id, invoice=fetch.invoice_id,
                        error=str(exc)[:300])

    def _classifier(self) -> Any:
        """A classifier pool actor (round robin), or None when the pool is not running (tools, some tests)."""
        if self._classifiers is None:
            handles = []
            for index in range(int(self.config.get("classifiers", 1))):
                with contextlib.suppress(ValueError):
                    handles.append(ray.get_actor(f"classifier-{index}", namespace=NAMESPACE))
            self._classifiers = handles
        if not self._classifiers:
            self._classifiers = None
            return None
        self._next_classifier = (self._next_classifier + 1) % len(self._classifiers)
        return self._classifiers[self._next_classifier]

    async def _tenant_key(self, tenant_id: str) -> str | None:
        db = await self._database()
        async with db.connection() as conn:
            return await self._keys.for_tenant(conn, tenant_id)

    async def _provider_reader(self, tenant_id: str) -> Any:
        """A reader with the tenant's provider key (else the global one); None when neither is set."""
        key = await self._tenant_key(tenant_id)
        if key and key not in self._readers:
            from actors.executor import StripeReader

            self._readers[key] = StripeReader(key, self.config.get("stripe_api_base"))
        return self._readers.get(key) if key else None

    def _observe(self, decisions: list[Decision]) -> None:
        """Metrics after commit (never before: a rolled-back decision counts nothing)."""
        self._metrics.record([e for d in decisions for e in d.events])
        self._start_occupancy_timer()

    def _open_cases(self) -> int:
        return sum(1 for c in self._active.values() for case in c.state["cases"].values()
                   if case["state"] in OPEN_STATES)

    def _start_occupancy_timer(self) -> None:
        """The occupancy gauges are set every 5 s whether or not decisions happen (a gauge set only inside
        decisions goes stale, then drops out of the export)."""
        if self._occupancy_task is None or self._occupancy_task.done():
            self._occupancy_task = asyncio.get_running_loop().create_task(self._occupancy_loop())

    async def _occupancy_loop(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                self._metrics.occupancy(len(self._active), self._open_cases())
            await asyncio.sleep(5.0)

    def __repr__(self) -> str:
        """Ray shows this in the dashboard's actor list and in front of the actor's log lines."""
        return (f"CustomerShard({shard_name(self.index)}, active={len(self._active)}, applied={self.applied}, "
                f"timers_fired={self.fired})")

    async def _charge(self, tenant_id: str, customer_id: str, charge: ChargeRequest) -> None:
        """Call the provider after the intent committed, then record the outcome in its own decision."""
        if provider_of(customer_id) != STRIPE:
            await self._charge_elsewhere(tenant_id, customer_id, charge)
            return
        adapter = await self._provider(tenant_id)
        if adapter is None:
            log.warning("charge.no_provider", tenant=tenant_id, customer=customer_id, invoice=charge.invoice_id)
            return
        self._maybe_crash("before_call")
        result = await asyncio.to_thread(adapter.pay_invoice, charge.invoice_id, charge.idempotency_key,
                                         charge.payment_method_id)
        self._maybe_crash("after_call")
        await self._settle(tenant_id, customer_id, charge, result)

    async def _charge_elsewhere(self, tenant_id: str, customer_id: str, charge: ChargeRequest) -> None:
        """The registry's providers (actors/executors/): the adapter gets the provider's own customer id and the
        intent's time, which Braintree's lookup before any new charge starts from."""
        db = await self._database()
        async with db.connection() as conn:
            adapter, intended_at = await self._retries.prepare(conn, tenant_id, customer_id, charge)
        if adapter is None:
            log.warning("charge.no_provider", tenant=tenant_id, customer=customer_id, invoice=charge.invoice_id)
            return
        self._maybe_crash("before_call")
        result = await asyncio.to_thread(adapter.charge, provider_customer_id(customer_id), charge, intended_at)
        self._maybe_crash("after_call")
        await self._settle(tenant_id, customer_id, charge, result)

    async def _tenant_state(self, conn: Any, tenant_id: str, ttl: float = 5.0
                            ) -> tuple[frozenset[str], str, dict[str, Any] | None]:
        """Providers with an open incident, the tenant's retry mode and its email branding (None: the
        installation's), cached a few seconds per shard so that a change made through the admin API or the CLI
        applies within seconds."""
        cached = self._incidents.get(tenant_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1], cached[2], cached[3]
        from actors.monitor import open_incidents
        from payrisk.store import tenant_records

        paused = frozenset(str(i.get("provider")) for i in await open_incidents(conn, tenant_id))
        row = await tenant_records.get(conn, tenant_id)
        mode = str(row["retry_mode"]) if row else "own"
        branding = (row["settings"] or {}).get("branding") if row else None
        branding = branding if isinstance(branding, dict) else None
        self._incidents[tenant_id] = (time.monotonic() + ttl, paused, mode, branding)
        return paused, mode, branding

    def _maybe_crash(self, point: str) -> None:
        """Fault injection for tests: die once at `point` (the marker file makes it once per test)."""
        marker = self.config.get("crash_marker")
        if self.config.get("crash_point") == point and marker and not os.path.exists(marker):
            with open(marker, "w") as f:
                f.write(point)
            os._exit(1)

    async def _provider(self, tenant_id: str) -> Any:
        """The retry executor's adapter with the tenant's provider key (else the global one); None: no key."""
        key = await self._tenant_key(tenant_id)
        if key and key not in self._adapters:
            from actors.executor import StripeAdapter

            self._adapters[key] = StripeAdapter(key, self.config.get("stripe_api_base"))
        return self._adapters.get(key) if key else None

    # --------------------------------------------------------------------------------------------- reads

    async def state_of(self, tenant_id: str, customer_id: str) -> dict[str, Any]:
        async with self._lock((tenant_id, customer_id)):
            customer = await self._load(tenant_id, customer_id)
        return {"version": customer.version, "status": customer_status(customer.state), "state": customer.state}

    async def node(self) -> str:
        """The Ray node hosting this shard (for placement checks and the dashboard)."""
        return str(ray.get_runtime_context().get_node_id())

    async def activate(self, keys: list[tuple[str, str]]) -> list[float]:
        """Warm up: load these customers into memory now (after a restart, before a billing run). Returns each
        load's duration in seconds (0 for one already active)."""
        durations = []
        for tenant_id, customer_id in keys:
            started = time.perf_counter()
            async with self._lock((tenant_id, customer_id)):
                await self._load(tenant_id, customer_id)
            durations.append(time.perf_counter() - started)
        return durations

    async def memory(self) -> dict[str, int]:
        """This shard process's resident memory and how many customers it holds."""
        import psutil

        return {"rss": psutil.Process().memory_info().rss, "active": len(self._active)}

    async def stats(self) -> dict[str, Any]:
        self._start_occupancy_timer()
        return {"index": self.index, "active_customers": len(self._active), "applied": self.applied,
                "fired": self.fired}

    async def configure(self, changes: dict[str, Any]) -> None:
        """Test hook: change fault-injection switches (and the installation's provider key) at run time."""
        self.config.update(changes)
        if "stripe_api_key" in changes:
            self._keys = ProviderKeys(self.config)


async def _decide_delivery(conn: Any, item: dict[str, Any], state: dict[str, Any], ctx: Context
                           ) -> list[Decision] | None:
    """Decide one delivery's events, unless it was applied already (then None); marks it applied."""
    status = await deliveries.lock_for_apply(conn, item["delivery_id"])
    if status is None or status in deliveries.FINAL:
        return None
    decisions = []
    for event in item["events"]:
        decisions.append(decide_inbound(state, event, ctx, item["delivery_id"]))
        state = decisions[-1].state
    await record_provider_attempts(conn, item["tenant_id"], item["customer_id"], item["events"], state.get("cases"))
    # webhook stored → applied to the checkpoint, for the metric
    item["waited"] = await deliveries.mark_applied(conn, item["delivery_id"])
    return decisions


def _outcome(item: dict[str, Any], result: str | BaseException) -> str:
    """An item's outcome for the gateway: `failed: <reason>` when this delivery itself cannot be applied (the
    gateway counts those and quarantines the delivery after a few), so that it never fails its batch's neighbours.
    PostgreSQL being unavailable is not the delivery's fault: that error is raised (the sweeper retries)."""
    if isinstance(result, str):
        return result
    if isinstance(result, StoreUnavailable | ConcurrencyConflict | asyncio.CancelledError) or not isinstance(
            result, Exception):
        raise result
    log.warning("delivery.apply_failed", delivery=item["delivery_id"], error=f"{type(result).__name__}: {result}"[:300])
    return f"failed: {type(result).__name__}: {result}"[:500]


def _fingerprints(state: dict[str, Any]) -> list[str]:
    cards = (c["card"].get("card_fingerprint") for c in state["cases"].values())
    return sorted({fingerprint for fingerprint in cards if fingerprint})
