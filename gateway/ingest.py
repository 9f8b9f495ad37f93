"""Durable, deduplicated ingest with group commit.

Concurrent deliveries share one PostgreSQL transaction (flushed every few milliseconds or when the batch is
full); every request is answered only after the commit that stored it (invariant I1). Redis absorbs retry
storms with one pipelined call per flush: a key marked "committed" answers as a duplicate at once; any other
state goes to PostgreSQL, whose unique constraint decides (invariant I2).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from store import Database, StoreUnavailable
from store import deliveries as store_deliveries
from store.deliveries import DeliveryStatus, NewDelivery

_PENDING, _COMMITTED = b"p", b"c"
T = TypeVar("T")

#: one call per flush for every key of the batch (a pipeline of N `SET`s costs redis-py ~30 µs of Python per
#: command; the script's reply is one array). `SET … NX GET` answers the previous value: "c" = committed before.
#: A single Redis (or one slot) is assumed: the keys of a batch are not co-located on a Redis Cluster.
_CLAIM = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2], 'GET') end
return out
"""
_MARK = """
for _, key in ipairs(KEYS) do redis.call('SET', key, ARGV[1], 'PX', ARGV[2]) end
return #KEYS
"""


@dataclass(slots=True)
class Delivery:
    tenant_id: str
    provider: str
    provider_event_id: str
    event_type: str
    customer_id: str | None
    body: bytes
    headers: dict[str, str]
    status: str  # received | ignored | quarantined
    status_reason: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    redis_namespace: str = ""  # the tenant's random namespace (migration 0002)

    @property
    def key(self) -> str:
        return f"{self.redis_namespace or self.tenant_id}:{self.provider}:{self.provider_event_id}"


@dataclass(frozen=True, slots=True)
class Stored:
    delivery_id: int | None  # None for a duplicate
    duplicate: bool


class GroupCommitter:
    """Batches deliveries into shared transactions; `submit` returns once the delivery is durable."""

    def __init__(self, db: Database, redis: Redis | None, *, window_ms: float = 2.0, max_batch: int = 256,
                 redis_prefix: str = "payrisk:dlv:", redis_ttl_ms: int = 3 * 86_400_000, max_flushes: int = 3,
                 commit_timeout: float = 5.0, answer_timeout: float = 10.0) -> None:
        self._db = db
        self._redis = redis
        self._window = window_ms / 1000.0
        self._max_batch = max_batch
        self._prefix = redis_prefix
        self._ttl_ms = redis_ttl_ms
        self._queue: asyncio.Queue[tuple[Delivery, asyncio.Future[Stored]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._max_flushes = max_flushes
        self._commit_timeout = commit_timeout
        self._answer_timeout = answer_timeout
        self._flushes: set[asyncio.Task[None]] = set()
        self._burst = False  # a whole burst is queued (`submit_many`): flush without waiting out the window
        self._claim = redis.register_script(_CLAIM) if redis is not None else None
        self._mark = redis.register_script(_MARK) if redis is not None else None
        self.redis_errors = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._flushes:  # let commits under way finish: their callers are waiting for the answer
            await asyncio.gather(*self._flushes, return_exceptions=True)

    async def submit(self, delivery: Delivery) -> Stored:
        """Durable once this returns. Not committed within `answer_timeout` (PostgreSQL slow, the queue long):
        StoreUnavailable, so the sender hears 503 in time; should it commit later, its retry is a duplicate."""
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((delivery, future))
        return await self._answered(future)

    async def submit_many(self, deliveries: list[Delivery]) -> list[Stored]:
        """Several deliveries at once, answered together in their order once all are durable (a burst that is
        already complete: its batches flush at once instead of waiting out the window for more). Raises as `submit`
        does when any of them cannot be stored; those already committed stay stored (a retry is a duplicate)."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Stored]] = [loop.create_future() for _ in deliveries]
        for delivery, future in zip(deliveries, futures, strict=True):
            self._queue.put_nowait((delivery, future))
        self._burst = True
        return await self._answered(asyncio.gather(*futures))

    async def _answered(self, answer: Awaitable[T]) -> T:
        """`answer` within `answer_timeout`, else StoreUnavailable. A timeout cancels the waiting futures: their
        flush then skips the answer (a delivery stays stored if it commits, and its retry is a duplicate)."""
        try:
            async with asyncio.timeout(self._answer_timeout):
                return await answer
        except TimeoutError:
            raise StoreUnavailable(f"not committed within {self._answer_timeout:g} s") from None

    async def _run(self) -> None:
        """Collect a batch, start its flush, collect the next one while that commits (up to `max_flushes`)."""
        slots = asyncio.Semaphore(self._max_flushes)
        while True:
            batch = [await self._queue.get()]
            if self._window and not self._burst:
                await asyncio.sleep(self._window)
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if self._queue.empty():
                self._burst = False
            await slots.acquire()
            task = asyncio.get_running_loop().create_task(self._flush(batch))
            self._flushes.add(task)
            task.add_done_callback(lambda t: (self._flushes.discard(t), slots.release()))

    async def _flush(self, batch: list[tuple[Delivery, asyncio.Future[Stored]]]) -> None:
        seen = await self._redis_claims([d for d, _ in batch])
        to_store = [(d, f) for (d, f), committed in zip(batch, seen, strict=True) if not committed]
        for (_, future), committed in zip(batch, seen, strict=True):
            if committed and not future.done():
                future.set_result(Stored(None, True))
        if not to_store:
            return
        try:
            ids = await self._insert_within([d for d, _ in to_store])
        except StoreUnavailable as exc:  # PostgreSQL is down: every waiter hears it (→ 503, nothing acknowledged)
            _fail(to_store, exc)
            return
        except Exception:  # noqa: BLE001 - a row PostgreSQL refuses must not fail its neighbours: one by one
            await self._isolate(to_store)
            return
        self._answer(to_store, ids)
        await self._redis_mark_committed([d for d, _ in to_store])  # after the answers: a fast path only

    def _answer(self, batch: list[tuple[Delivery, asyncio.Future[Stored]]], ids: list[int | None]) -> None:
        for (_, future), delivery_id in zip(batch, ids, strict=True):
            if not future.done():
                future.set_result(Stored(delivery_id, delivery_id is None))

    async def _isolate(self, batch: list[tuple[Delivery, asyncio.Future[Stored]]]) -> None:
        """The batch's transaction failed on some row: store each delivery in its own transaction, so that only
        the row PostgreSQL refuses fails (its waiter gets the error) and every other one is stored and answered."""
        stored = []
        for delivery, future in batch:
            try:
                ids = await self._insert_within([delivery])
            except Exception as exc:  # noqa: BLE001 - this waiter hears its own error, the rest go on
                _fail([(delivery, future)], exc)
                continue
            self._answer([(delivery, future)], ids)
            stored.append(delivery)
        await self._redis_mark_committed(stored)

    async def _insert_within(self, deliveries: list[Delivery]) -> list[int | None]:
        """`_insert`, bounded: a commit that does not finish in `commit_timeout` is reported unavailable (the
        waiters answer 503; should it still commit, the provider's retry is then a duplicate — never a loss)."""
        try:
            return await asyncio.wait_for(self._insert(deliveries), self._commit_timeout)
        except TimeoutError:
            raise StoreUnavailable(f"the commit took longer than {self._commit_timeout:g} s") from None

    async def _insert(self, deliveries: list[Delivery]) -> list[int | None]:
        return await store_deliveries.insert_many(self._db, [
            NewDelivery(d.tenant_id, d.provider, d.provider_event_id, d.event_type, d.customer_id, d.body, d.headers,
                        DeliveryStatus(d.status), d.status_reason) for d in deliveries])

    async def _redis_claims(self, deliveries: list[Delivery]) -> list[bool]:
        """True for deliveries Redis knows as already committed. Redis trouble → treat all as new."""
        if self._claim is None:
            return [False] * len(deliveries)
        try:
            previous = await self._claim(keys=[self._prefix + d.key for d in deliveries], args=[_PENDING, self._ttl_ms])
        except RedisError:
            self.redis_errors += 1
            return [False] * len(deliveries)
        return [value == _COMMITTED for value in previous]

    async def _redis_mark_committed(self, deliveries: list[Delivery]) -> None:
        if self._mark is None or not deliveries:
            return
        try:
            await self._mark(keys=[self._prefix + d.key for d in deliveries], args=[_COMMITTED, self._ttl_ms])
        except RedisError:
            self.redis_errors += 1


def _fail(batch: list[tuple[Delivery, asyncio.Future[Stored]]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
