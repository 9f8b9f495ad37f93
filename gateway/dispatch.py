"""The gateway's one door to Ray: hand committed deliveries to their customer's shard, micro-batched.

Hand-off happens after the commit that stored the delivery and never delays the 2xx. A hand-off that is lost
(process death, shard restart) is repaired by the sweeper, which re-dispatches deliveries still `received`
or `dispatched` after a grace period; shards apply each delivery at most once, so re-dispatch is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import structlog

from actors.placement import NAMESPACE, shard_index, shard_name
from actors.raysys import join_ray, ray_alive
from gateway.telemetry import REQUEST_ID
from settings import Settings
from store import Database, StoreError, deliveries

if TYPE_CHECKING:
    from gateway.metrics import GatewayMetrics

log = structlog.get_logger("payrisk.dispatch")



__all__ = ["BACKGROUND_LOOPS", "DispatchUnavailable", "Dispatcher", "join_ray", "ray_alive"]

#: the named background actors whose loops readiness reports
BACKGROUND_LOOPS = ("scheduler", "outbox", "monitor")


class DispatchUnavailable(Exception):
    """Ray or the customer's shard could not take the request now (retryable)."""


class Dispatcher:
    def __init__(self, db: Database, settings: Settings, metrics: GatewayMetrics, *, flush_ms: float = 3.0,
                 max_batch: int = 100, max_inflight: int = 2) -> None:
        self._db = db
        self._settings = settings
        self._metrics = metrics
        self._flush = flush_ms / 1000.0
        self._max_batch = max_batch
        #: hand-offs a shard has not answered yet, at most `max_inflight` each: while a shard is busy its buffer
        #: grows, and the next hand-off carries all of it (a shard's transaction costs about the same for 2
        #: deliveries as for 20, so batches that grow with the load are what lets the shards keep up)
        self._max_inflight = max_inflight
        self._inflight_by_shard: dict[int, int] = defaultdict(int)
        self._buffers: dict[int, list[dict[str, Any]]] = defaultdict(list)
        #: the delivery ids waiting in the buffers: one copy each (the sweeper re-submits what a shard that is down
        #: has not applied every few seconds; while the shard stays down, those copies must not pile up)
        self._buffered: set[int] = set()
        self._handles: dict[int, Any] = {}
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self._sending: set[asyncio.Task[None]] = set()  # hand-offs waiting for their shard's answer
        self._classifiers: Any = None
        self._to_mark: list[int] = []
        self._next_mark = 0.0
        self._alarm: asyncio.TimerHandle | None = None  # wakes the flush loop at `_alarm_at` (loop time)
        self._alarm_at = 0.0

    @property
    def shard_count(self) -> int:
        return len(self._handles)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._flush_loop(), name="dispatch"),
                       loop.create_task(self._sweep_loop(), name="sweep")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for task in list(self._inflight):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 2.0)

    def submit(self, tenant_id: str, delivery_id: int | None, customer_id: str | None,
               events: list[dict[str, Any]]) -> None:
        """Queue a committed delivery for its customer's shard (non-blocking)."""
        if delivery_id is None or customer_id is None or self._settings.gateway.fault_drop_handoff:
            return
        index = shard_index(tenant_id, customer_id, self._settings.ray.shards, self._settings.ray.virtual_shards)
        item: dict[str, Any] = {"tenant_id": tenant_id, "delivery_id": delivery_id, "customer_id": customer_id,
                                "events": events}
        request_id = REQUEST_ID.get()
        if request_id:  # the webhook's request id (gateway/telemetry.py) follows it into the shard's log lines
            item["request_id"] = request_id
        if not self._buffer(index, item):
            return
        if len(self._buffers[index]) >= self._max_batch:
            self._wakeup.set()
        else:
            self._wake_in(self._flush)

    def flush_now(self) -> None:
        """Send what is buffered now, without waiting `flush_ms` for more (the caller's burst is complete)."""
        if any(self._buffers.values()):
            self._wakeup.set()

    async def settled(self) -> None:
        """Returns once everything queued so far was sent and its shard answered: the decisions of a burst just
        handed off are committed (a hand-off that failed is sent again later, or by the sweeper: a caller that
        must know reads the deliveries' status)."""
        while True:
            if any(self._buffers.values()):
                self._wakeup.set()
                if self._sendable() or not self._sending:
                    await asyncio.sleep(0)  # the flush loop takes them
                else:  # every shard with a buffer is busy: its next hand-off leaves when one answers
                    await asyncio.wait(set(self._sending), return_when=asyncio.FIRST_COMPLETED)
            elif self._sending:
                await asyncio.wait(set(self._sending))
            else:
                return

    def _wake_in(self, delay: float) -> None:
        """Wake the flush loop within `delay` seconds (an earlier alarm already set stands)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # queued from outside the loop (before it runs): flushed as soon as it does
            self._wakeup.set()
            return
        at = loop.time() + delay
        if self._alarm is not None and self._alarm_at <= at:
            return
        if self._alarm is not None:
            self._alarm.cancel()
        self._alarm, self._alarm_at = loop.call_at(at, self._wakeup.set), at

    async def _flush_loop(self) -> None:
        """Sleeps until there is something to send: a batch full, or `flush_ms` after the first item of a batch,
        or the next status write due. (It woke every `flush_ms` before, busy or not: an idle gateway spent a
        sixth of its CPU on the wake-ups.)"""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self._alarm is not None:  # this pass takes everything buffered: an alarm still set is not needed
                self._alarm.cancel()
                self._alarm = None
            if self._to_mark:
                if time.monotonic() >= self._next_mark:
                    self._next_mark = time.monotonic() + 0.1  # one status write per 100 ms, not one per batch
                    ids, self._to_mark = self._to_mark, []
                    self._spawn(self._mark_dispatched(ids))
                else:
                    self._wake_in(self._next_mark - time.monotonic())
            for index in self._sendable():
                while self._buffers[index] and self._inflight_by_shard[index] < self._max_inflight:
                    buffer = self._buffers[index]
                    batch, self._buffers[index] = buffer[:self._max_batch], buffer[self._max_batch:]
                    self._buffered.difference_update(item["delivery_id"] for item in batch)
                    self._inflight_by_shard[index] += 1
                    self._sending.add(task := self._spawn(self._send(index, batch)))
                    task.add_done_callback(self._sending.discard)
                    task.add_done_callback(lambda _, i=index: self._answered(i))

    def _buffer(self, index: int, item: dict[str, Any]) -> bool:
        """Queue `item` for shard `index`, unless a copy of its delivery waits there already (False)."""
        if item["delivery_id"] in self._buffered:
            return False
        self._buffered.add(item["delivery_id"])
        self._buffers[index].append(item)
        return True

    def _sendable(self) -> list[int]:
        """The shards with something buffered and room for another hand-off."""
        return [i for i, b in self._buffers.items() if b and self._inflight_by_shard[i] < self._max_inflight]

    def _answered(self, index: int) -> None:
        """A hand-off to shard `index` ended (answered or failed): what its buffer gathered meanwhile goes now."""
        self._inflight_by_shard[index] -= 1
        if self._buffers[index]:
            self._wakeup.set()

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return task

    async def _send(self, index: int, batch: list[dict[str, Any]]) -> None:
        handle = self._handles.get(index)
        if handle is None:  # looking an actor up blocks on the GCS: off the event loop
            handle = await asyncio.to_thread(self._handle, index)
        if handle is None:
            return  # Ray not there: the sweeper re-dispatches later
        try:
            ref = handle.apply_deliveries.options(enable_task_events=False).remote(batch)
            self._to_mark.extend(item["delivery_id"] for item in batch)
            self._wake_in(0.1)  # their status write
            outcomes = await ref
        except Exception as exc:  # noqa: BLE001 - Ray errors are many; the sweeper repairs any of them
            self._handles.pop(index, None)
            self._metrics.dispatch_error()
            log.warning("dispatch.failed", shard=index, size=len(batch), error=str(exc)[:200])
            self._retry_soon(batch)
            return
        failed = [(item["delivery_id"], outcome) for item, outcome in zip(batch, outcomes, strict=False)
                  if isinstance(outcome, str) and outcome.startswith("failed:")]
        if failed:
            with contextlib.suppress(StoreError):  # not recorded now: the sweeper re-sends, it fails again
                await self._record_failures(failed)

    def _retry_soon(self, batch: list[dict[str, Any]], delay: float = 2.0, most: int = 3) -> None:
        """A hand-off that failed as a whole (the shard restarting, PostgreSQL down): send it again in a few
        seconds, a few times, rather than waiting for the sweeper's 30 s. Shards skip what they already applied."""
        again = [{**item, "handoffs": item.get("handoffs", 0) + 1} for item in batch if item.get("handoffs", 0) < most]
        if not again:
            return

        def resubmit() -> None:
            for item in again:
                index = shard_index(item["tenant_id"], item["customer_id"], self._settings.ray.shards,
                                    self._settings.ray.virtual_shards)
                self._buffer(index, item)
            self._wakeup.set()

        asyncio.get_running_loop().call_later(delay * again[0]["handoffs"], resubmit)

    async def _record_failures(self, failed: list[tuple[int, str]]) -> None:
        """A delivery its customer's home could not apply: count it; after `MAX_APPLY_FAILURES` it is quarantined
        with the last reason (kept, replayable with `payrisk replay --quarantined`), never re-sent for ever."""
        for delivery_id, outcome in failed:
            reason = outcome.removeprefix("failed: ").replace("\x00", "\\u0000")
            await deliveries.record_apply_failure(self._db, delivery_id, reason)
            log.warning("delivery.apply_failed", delivery=delivery_id, error=reason[:200])

    def _handle(self, index: int) -> Any:
        if index not in self._handles:
            import ray

            if not ray.is_initialized():
                return None
            try:
                self._handles[index] = ray.get_actor(shard_name(index), namespace=NAMESPACE)
            except ValueError:
                return None
        return self._handles[index]

    async def update_profile(self, tenant_id: str, customer_id: str, profile: dict[str, Any],
                             request_id: str) -> str:
        """Send a profile update to the customer's home; raises DispatchUnavailable when Ray is not there."""
        index = shard_index(tenant_id, customer_id, self._settings.ray.shards, self._settings.ray.virtual_shards)
        handle = await asyncio.to_thread(self._handle, index)
        if handle is None:
            raise DispatchUnavailable("the customer's shard is not reachable")
        try:
            return str(await handle.update_profile.remote(tenant_id, customer_id, profile, request_id))
        except Exception as exc:  # noqa: BLE001 - every Ray failure is the same to the caller: try again
            self._handles.pop(index, None)
            raise DispatchUnavailable(str(exc)[:200]) from None

    async def operator_command(self, tenant_id: str, customer_id: str, command: dict[str, Any]) -> str:
        """An operator's command on one case, decided by the customer's home (`done: …` / `refused: …`);
        raises DispatchUnavailable when Ray is not there. Idempotent per `command["request_id"]`."""
        index = shard_index(tenant_id, customer_id, self._settings.ray.shards, self._settings.ray.virtual_shards)
        handle = await asyncio.to_thread(self._handle, index)
        if handle is None:
            raise DispatchUnavailable("the customer's shard is not reachable")
        try:
            return str(await handle.operator_command.remote(tenant_id, customer_id, command))
        except Exception as exc:  # noqa: BLE001 - every Ray failure is the same to the caller: try again
            self._handles.pop(index, None)
            raise DispatchUnavailable(str(exc)[:200]) from None

    async def classify(self, tenant_id: str, provider: str, declines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Classify through the classifier pool (`classifier-N` actors), in input order."""
        import ray

        if self._classifiers is None:
            if not ray.is_initialized():
                raise DispatchUnavailable("Ray is not reachable")
            from actors.classifier import ClassifierPool

            self._classifiers = await asyncio.to_thread(ClassifierPool, self._settings.ray.classifiers)
        try:
            results = await self._classifiers.classify_async([(tenant_id, provider, d) for d in declines])
        except Exception as exc:  # noqa: BLE001 - every Ray failure is the same to the caller: try again
            self._classifiers = None
            raise DispatchUnavailable(str(exc)[:200]) from None
        return [r.model_dump(mode="json") for r in results]

    async def loops_health(self, timeout: float = 2.0) -> dict[str, Any]:
        """The background loops (scheduler, outbox, monitor) as their actors report them; an actor that does not
        answer within `timeout` is reported `unreachable`."""
        return dict(await asyncio.gather(*(self._loop_health(name, timeout) for name in BACKGROUND_LOOPS)))

    async def _loop_health(self, name: str, timeout: float) -> tuple[str, dict[str, Any]]:
        import ray

        try:
            actor = await asyncio.to_thread(ray.get_actor, name, namespace=NAMESPACE)
            report: dict[str, Any] = await asyncio.wait_for(actor.health.remote(), timeout)
        except Exception as exc:  # noqa: BLE001 - any Ray failure means the same here: we cannot see the loop
            return name, {"running": False, "unreachable": True, "error": type(exc).__name__}
        return name, report

    def refresh_handles(self) -> None:
        for index in range(self._settings.ray.shards):
            self._handle(index)

    async def _mark_dispatched(self, delivery_ids: list[int]) -> None:
        """Status only (the sweeper re-sends `received` ones sooner); a failure here loses nothing."""
        with contextlib.suppress(StoreError):
            await self._write_dispatched(delivery_ids)

    async def _write_dispatched(self, delivery_ids: list[int]) -> None:
        await deliveries.mark_dispatched(self._db, delivery_ids)

    async def _sweep_loop(self) -> None:
        await asyncio.to_thread(self.refresh_handles)
        while True:
            try:
                await self.sweep(self._settings.gateway.sweep_grace_seconds)
            except StoreError as exc:
                log.warning("sweep.failed", error=str(exc)[:200])
            await asyncio.sleep(self._settings.gateway.sweep_interval_seconds)

    async def sweep(self, grace_seconds: float = 10.0, limit: int = 1000) -> int:
        """Re-dispatch deliveries stored but not applied after `grace_seconds`; returns how many."""
        from gateway.redispatch import pending_items

        async with self._db.connection() as conn:
            if not await deliveries.try_sweep_lock(conn):
                return 0
            try:
                items = await pending_items(conn, grace_seconds, limit)
            finally:
                await deliveries.release_sweep_lock(conn)
        for item in items:
            self.submit(item["tenant_id"], item["delivery_id"], item["customer_id"], item["events"])
        if items:
            log.info("sweep.redispatched", count=len(items))
        return len(items)
