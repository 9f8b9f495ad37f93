"""The customer shard actor: Ray's wiring around a `CustomerHome` (actors/home.py).

Each shard hosts many customers as virtual actors (single writer per customer); the home owns activation, locking
and the one commit path, `ProviderCalls` the provider calls after commit, `TenantContexts` the decision context.
This module only turns each Ray method into deciders and runs what a commit left to do (charges, API reads).
Ray may run a method twice after a restart (`max_task_retries=-1`), so every method is idempotent: a delivery
already applied, or a timer already fired, is skipped inside the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ray
import structlog

from actors.clock import make_clock
from actors.contexts import TenantContexts
from actors.delivery_apply import DeliveryClaims, DeliveryDecider
from actors.domain.case import customer_status, evolve
from actors.domain.decide import decide_attempt_result, decide_details_fetched
from actors.domain.decisions import ChargeRequest, Context, Decision, DetailsFetch
from actors.domain.machine import OPEN
from actors.home import Committed, CustomerHome, Decider, Key
from actors.metrics import EngineMetrics
from actors.persist import record_outcome
from actors.placement import NAMESPACE, shard_name
from actors.provider_calls import ProviderCalls
from actors.provider_keys import ProviderKeys
from actors.timer_apply import TimerClaims, TimerDecider
from settings.logging import configure_logging
from settings.process import DEFAULT_THRESHOLD, tune_gc
from store import ConcurrencyConflict, Conn, Database, StoreError, StoreUnavailable

log = structlog.get_logger("payrisk.shard")

OPEN_STATES = frozenset(s.value for s in OPEN)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class CustomerShard:
    def __init__(self, index: int, config: dict[str, Any]) -> None:
        configure_logging(config.get("log_level", "info"), config.get("log_format"))
        self.index = index
        self.config = config
        self._db: Database | None = None
        self._clock = make_clock(config.get("clock", "real"))
        self._metrics = EngineMetrics(shard_name(index))
        self._contexts = TenantContexts(config, ProviderKeys(config))  # the tenant's own key, else STRIPE_API_KEY
        self.home = CustomerHome(self._database, self._clock.now, self._contexts,
                                 max_active=int(config.get("max_active", 50_000)), on_commit=self._observe)
        self._calls = ProviderCalls(config, self._contexts.keys, self._database, classifier=self._classifier,
                                    crash=self._maybe_crash)
        self._classifiers: list[Any] | None = None
        self._next_classifier = 0
        self._background: set[asyncio.Task[None]] = set()
        self._occupancy_task: asyncio.Task[None] | None = None
        self.applied = 0
        self.fired = 0
        tune_gc(int(config.get("gc_threshold", DEFAULT_THRESHOLD)))  # it holds every active customer

    async def _database(self) -> Database:
        if self._db is None:
            self._db = Database(self.config["database_url"], max_size=int(self.config.get("pool_size", 4)))
            await self._db.open()
        return self._db

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
        structlog.contextvars.bind_contextvars(tenant=item["tenant_id"], customer=item["customer_id"],
                                               delivery=item["delivery_id"], request_id=item.get("request_id"))
        outcome = await self._decide((item["tenant_id"], item["customer_id"]), DeliveryDecider(item))
        if outcome == "applied":
            self.applied += 1
            self._metrics.delivery_applied(waited=item.get("waited"))
        return outcome

    async def _apply_batch(self, items: list[dict[str, Any]]) -> list[str]:
        groups: dict[Key, list[dict[str, Any]]] = {}
        for item in items:
            groups.setdefault((item["tenant_id"], item["customer_id"]), []).append(item)
        claims = DeliveryClaims(items)  # every delivery of the batch claimed with one statement
        written = await self.home.decide_many({key: [DeliveryDecider(i, claims) for i in group]
                                               for key, group in groups.items()}, prepare=claims.claim)
        outcomes: dict[int, str] = {}
        for committed in written:
            for item, applied in zip(groups[committed.key], committed.applied, strict=True):
                outcomes[item["delivery_id"]] = "applied" if applied else "skipped"
        # a provider call logs under the request that caused it (the customer's latest in this batch)
        await self._after_commits(written, {key: group[-1].get("request_id") for key, group in groups.items()})
        applied = [item for item in items if outcomes[item["delivery_id"]] == "applied"]
        self.applied += len(applied)
        for item in applied:
            self._metrics.delivery_applied(waited=item.get("waited"))
        return [outcomes[item["delivery_id"]] for item in items]

    async def fire_timers(self, due: list[dict[str, Any]]) -> int:
        """Deliver claimed timers; a timer already fired or cancelled is a no-op. Returns how many fired.

        The batch shares one transaction (each customer's timers decided in claim order, all committed together);
        when that transaction fails, every timer is fired again on its own."""
        if len(due) > 1:
            try:
                return await self._fire_batch(due)
            except StoreError as exc:  # a lost race or a deadlock: each timer decides again on its own
                log.info("timers.batch_fallback", size=len(due), error=str(exc)[:200])
        results = await asyncio.gather(*(self._fire_one(t) for t in due))
        return sum(results)

    async def _fire_batch(self, due: list[dict[str, Any]]) -> int:
        groups: dict[Key, list[dict[str, Any]]] = {}
        for timer in due:
            groups.setdefault((timer["tenant_id"], timer["stream_id"]), []).append(timer)
        claims = TimerClaims(due)
        written = await self.home.decide_many({key: [TimerDecider(t, claims) for t in group]
                                               for key, group in groups.items()}, prepare=claims.claim)
        fired = sum(sum(committed.applied) for committed in written)
        self.fired += fired
        # what the commit left to do (charges, reads), customers side by side
        await self._after_commits([c for c in written if any(c.applied)])
        return fired

    async def _fire_one(self, timer: dict[str, Any]) -> bool:
        outcome = await self._decide((timer["tenant_id"], timer["stream_id"]), TimerDecider(timer))
        self.fired += outcome == "applied"
        return outcome == "applied"

    async def update_profile(self, tenant_id: str, customer_id: str, profile: dict[str, Any],
                             request_id: str) -> str:
        """Record what the business says about the customer (segment inputs). Idempotent per `request_id`."""
        async def decide(conn: Conn, state: dict[str, Any], ctx: Context) -> list[Decision] | None:
            if state.get("profile_request") == request_id:
                return None
            payload = {"profile": profile, "request_id": request_id, "at": ctx.now.isoformat()}
            return [Decision(state=evolve(state, "ProfileUpdated", payload), events=[("ProfileUpdated", payload)])]

        return await self._decide((tenant_id, customer_id), decide)

    async def operator_command(self, tenant_id: str, customer_id: str, command: dict[str, Any]) -> str:
        """An operator's command on one case (actors/domain/operator.py); returns `done: …` or `refused: …`.
        Idempotent per `command["request_id"]`: a repeated request answers the first outcome and does nothing."""
        from actors.domain.operator import OperatorCommand, decide_operator, outcome_of

        cmd = OperatorCommand(**command)

        async def decide(conn: Conn, state: dict[str, Any], ctx: Context) -> list[Decision] | None:
            made = decide_operator(state, cmd, ctx)
            return None if made is None else [made]

        await self._decide((tenant_id, customer_id), decide)
        customer = await self.home.read((tenant_id, customer_id))
        return outcome_of(customer.state, cmd.request_id) or "refused: not recorded; try again"

    async def _decide(self, key: Key, decider: Decider) -> str:
        """The home's commit path, then what the commit left to do (charges, API reads)."""
        committed = await self.home.decide(key, decider)
        if not committed.applied[0]:
            return "skipped"
        await self._after_commits([committed])
        return "applied"

    async def _after_commits(self, written: Sequence[Committed],
                             request_ids: Mapping[Key, str | None] | None = None) -> None:
        """Outside the customers' locks, what their commits left to do: API reads start in the background; the
        charges are called side by side (one customer's in order), and their answers recorded together — as each
        customer's next decisions, in one transaction for the lot (each on its own when that one fails); then what
        those decisions left to do, the same way."""
        for committed in written:
            if request_ids is not None:
                structlog.contextvars.bind_contextvars(tenant=committed.key[0], customer=committed.key[1],
                                                       request_id=request_ids.get(committed.key))
            for fetch in committed.fetches:
                task = asyncio.get_running_loop().create_task(self._fetch(committed.key, fetch))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        charging = [c for c in written if c.charges]
        if not charging:
            return
        answers = await asyncio.gather(*(self._charge(c.key, c.charges, request_ids) for c in charging))
        groups = {c.key: deciders for c, (deciders, _) in zip(charging, answers, strict=True) if deciders}
        # a call that raised leaves no answer unrecorded: the error is raised once the answers are in
        failed = next((error for _, error in answers if error is not None), None)
        outcomes: list[Committed] | None = None
        if len(groups) > 1:
            try:
                outcomes = await self.home.decide_many(groups)
            except StoreError as exc:  # a lost race or a deadlock: each answer is recorded on its own
                log.info("charges.batch_fallback", size=len(groups), error=str(exc)[:200])
        if outcomes is None:
            outcomes = [await self.home.decide(key, decider) for key, deciders in groups.items()
                        for decider in deciders]
        await self._after_commits([c for c in outcomes if any(c.applied)])
        if failed is not None:
            raise failed

    async def _charge(self, key: Key, charges: Sequence[ChargeRequest],
                      request_ids: Mapping[Key, str | None] | None) -> tuple[list[Decider], Exception | None]:
        """Call the provider for each committed intent of one customer, in order (its own task: the log context
        bound here is its own); each answer as the decider that records it (none for an intent without a provider
        key: it stays an intent, reconciled later). A call that raises ends the customer's calls: the answers
        before it, and its error."""
        if request_ids is not None:
            structlog.contextvars.bind_contextvars(tenant=key[0], customer=key[1], request_id=request_ids.get(key))
        deciders: list[Decider] = []
        for charge in charges:
            try:
                result = await self._calls.charge(*key, charge)
            except Exception as exc:  # noqa: BLE001 - raised by the caller once the answers so far are recorded
                return deciders, exc
            if result is None:
                log.warning("charge.no_provider", tenant=key[0], customer=key[1], invoice=charge.invoice_id)
            else:
                deciders.append(_outcome_decider(key, charge, result))
        return deciders, None

    async def _fetch(self, key: Key, fetch: DetailsFetch) -> None:
        """One read, its answer decided as the customer's next event. A read that fails or is lost leaves the
        case to the webhooks and the classification timer (the last resort), never stuck."""
        try:
            result = await self._calls.details(*key, fetch)
        except Exception as exc:  # noqa: BLE001 - any failure here only means "no answer": the timer decides
            log.warning("details.fetch_failed", tenant=key[0], customer=key[1], invoice=fetch.invoice_id,
                        error=f"{type(exc).__name__}: {exc}"[:300])
            return
        if result is None:
            return

        async def decide(conn: Conn, state: dict[str, Any], ctx: Context) -> list[Decision] | None:
            return [decide_details_fetched(state, fetch.invoice_id, result, ctx)]

        try:
            await self._decide(key, decide)
        except StoreError as exc:
            log.warning("details.apply_failed", tenant=key[0], customer=key[1], invoice=fetch.invoice_id,
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

    def _maybe_crash(self, point: str) -> None:
        """Fault injection for tests: die once at `point` (the marker file makes it once per test)."""
        marker = self.config.get("crash_marker")
        if self.config.get("crash_point") == point and marker and not os.path.exists(marker):
            with open(marker, "w") as f:
                f.write(point)
            os._exit(1)

    # --------------------------------------------------------------------------------------------- metrics

    def _observe(self, decisions: list[Decision]) -> None:
        """Metrics after commit (never before: a rolled-back decision counts nothing)."""
        self._metrics.record([e for d in decisions for e in d.events])
        self._start_occupancy_timer()

    def _open_cases(self) -> int:
        return sum(1 for c in self.home.active for case in c.state["cases"].values()
                   if case["state"] in OPEN_STATES)

    def _start_occupancy_timer(self) -> None:
        """The occupancy gauges are set every 5 s whether or not decisions happen (a gauge set only inside
        decisions goes stale, then drops out of the export)."""
        if self._occupancy_task is None or self._occupancy_task.done():
            self._occupancy_task = asyncio.get_running_loop().create_task(self._occupancy_loop())

    async def _occupancy_loop(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                self._metrics.occupancy(len(self.home.active), self._open_cases())
            await asyncio.sleep(5.0)

    def __repr__(self) -> str:
        """Ray shows this in the dashboard's actor list and in front of the actor's log lines."""
        return (f"CustomerShard({shard_name(self.index)}, active={len(self.home.active)}, applied={self.applied}, "
                f"timers_fired={self.fired})")

    # --------------------------------------------------------------------------------------------- reads

    async def state_of(self, tenant_id: str, customer_id: str) -> dict[str, Any]:
        customer = await self.home.read((tenant_id, customer_id))
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
            await self.home.read((tenant_id, customer_id))
            durations.append(time.perf_counter() - started)
        return durations

    async def memory(self) -> dict[str, int]:
        """This shard process's resident memory and how many customers it holds."""
        import psutil

        return {"rss": psutil.Process().memory_info().rss, "active": len(self.home.active)}

    async def stats(self) -> dict[str, Any]:
        self._start_occupancy_timer()
        return {"index": self.index, "active_customers": len(self.home.active), "applied": self.applied,
                "fired": self.fired}

    async def configure(self, changes: dict[str, Any]) -> None:
        """Test hook: change fault-injection switches (and the installation's provider key) at run time."""
        self.config.update(changes)
        if "stripe_api_key" in changes:
            keys = ProviderKeys(self.config)
            self._contexts.keys = keys
            self._calls = ProviderCalls(self.config, keys, self._database, classifier=self._classifier,
                                        crash=self._maybe_crash)


def _outcome_decider(key: Key, charge: ChargeRequest, result: Any) -> Decider:
    """Record a provider's answer to one attempt: its status in `attempts`, and the customer's decision on it."""
    async def decide(conn: Conn, state: dict[str, Any], ctx: Context) -> list[Decision] | None:
        status = {"succeeded": "succeeded", "failed": "failed"}.get(result.outcome, "unknown")
        await record_outcome(conn, key[0], charge.idempotency_key, status, result.decline)
        return [decide_attempt_result(state, charge.invoice_id, charge.attempt_no, result.outcome,
                                      result.decline, ctx)]

    return decide


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
