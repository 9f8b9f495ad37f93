"""Customer homes without Ray: activation, the per-customer lock, and the one commit path.

A `CustomerHome` hosts many customers as virtual actors (single writer per customer). A customer is activated from
its checkpoint plus any newer events on first use and passivated when idle. Every change goes through one path:
under the customer's lock, a `Decider` (pure decisions, plus the idempotency check of what it applies) runs inside
a PostgreSQL transaction that writes events, checkpoint, timers, outbox rows and attempt intents; the in-memory
state follows only after the commit. A batch writes several customers in one transaction through the same path.
What must happen after the commit (provider calls, API reads) is returned, never run here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from actors.domain.case import empty_state, evolve
from actors.domain.decisions import ChargeRequest, Context, Decision, DetailsFetch
from actors.persist import Writes
from store import ConcurrencyConflict, Conn, Database, checkpoints, events
from store.checkpoints import Checkpoint
from store.events import RecordedEvent

if TYPE_CHECKING:
    from actors.contexts import CardHistories

Key = tuple[str, str]  # (tenant, customer)
T = TypeVar("T")
#: runs first in a batch's transaction, before any decider (e.g. claiming the batch's deliveries in one statement)
Prepare = Callable[[Conn], Awaitable[None]]


class BatchClaims(Generic[T]):
    """What one statement claims for a whole batch (its deliveries, its timers): run first in the batch's
    transaction (`decide_many(prepare=claims.claim)`), so that each decider only looks its item up; a rollback
    un-claims them all. `claim(conn, ids)` returns each claimed id's value; an id it leaves out is not to be
    decided (applied, fired or cancelled already, or unknown). A claim is taken once: a batch that carries the
    same item twice (a hand-off sent again while the first copy still waited in the buffer) decides it once."""

    def __init__(self, ids: Sequence[int], claim: Callable[[Conn, list[int]], Awaitable[Mapping[int, T]]]) -> None:
        self._ids, self._claim = [int(i) for i in ids], claim
        self._claimed: dict[int, T] | None = None

    async def claim(self, conn: Conn) -> None:
        self._claimed = dict(await self._claim(conn, self._ids))

    def take(self, item_id: int) -> T | None:
        """The claim's value for `item_id`, once per transaction; None when not claimed or taken already."""
        if self._claimed is None:
            raise RuntimeError("the batch's items were not claimed in this transaction")
        return self._claimed.pop(int(item_id), None)


async def take_claim(conn: Conn, batch: BatchClaims[T] | None, own: Callable[[], BatchClaims[T]],
                     item_id: int) -> T | None:
    """An item's claim: from its batch's claims, taken in the batch's transaction; or, decided on its own, claimed
    now by `own()` in this transaction (each transaction that runs it claims again: a retry too)."""
    if batch is None:
        batch = own()
        await batch.claim(conn)
    return batch.take(item_id)


class Decider(Protocol):
    """Decide inside the customer's transaction. None: nothing to apply (already applied, a repeated request) —
    nothing is written; a list (possibly empty): applied, its decisions written whole."""

    async def __call__(self, conn: Conn, state: dict[str, Any], ctx: Context) -> list[Decision] | None: ...


class ContextSource(Protocol):
    """The decision context for a customer at `now` (read in the customer's transaction); `history`, the card
    history when the caller has it already; `card_histories`, a batch's card histories in one read."""

    async def __call__(self, conn: Conn, tenant_id: str, state: dict[str, Any], now: datetime,
                       history: Mapping[str, list[datetime]] | None = None) -> Context: ...

    async def card_histories(self, conn: Conn, customers: Sequence[tuple[str, dict[str, Any]]],
                             now: datetime) -> CardHistories: ...


@dataclass(slots=True)
class Customer:
    version: int
    state: dict[str, Any]
    used: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class Committed:
    """What one customer's commit decided (`applied[i]`: whether decider i applied) and what is left to do."""

    key: Key
    decisions: list[Decision]
    applied: list[bool]

    @property
    def charges(self) -> list[ChargeRequest]:
        return [c for d in self.decisions for c in (*d.charges, *d.reconciles)]

    @property
    def fetches(self) -> list[DetailsFetch]:
        return [f for d in self.decisions for f in d.fetches]


class CustomerHome:
    def __init__(self, database: Callable[[], Awaitable[Database]], now: Callable[[], Awaitable[datetime]],
                 contexts: ContextSource, *, max_active: int = 50_000, idle_seconds: float = 900.0,
                 on_commit: Callable[[list[Decision]], None] = lambda _: None) -> None:
        self._database, self._now, self._contexts = database, now, contexts
        self._max_active, self._idle = max_active, idle_seconds
        self._on_commit = on_commit
        self._active: OrderedDict[Key, Customer] = OrderedDict()
        self._locks: dict[Key, asyncio.Lock] = {}

    @property
    def active(self) -> list[Customer]:
        return list(self._active.values())

    def lock(self, key: Key) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def load(self, key: Key) -> Customer:
        """The customer in memory, activated from its checkpoint and newer events when absent. Call under the
        customer's lock."""
        active = self._active.get(key)
        if active is not None:
            self._active.move_to_end(key)
            active.used = time.monotonic()
            return active
        return (await self._activate([key]))[key]

    async def load_many(self, keys: Sequence[Key]) -> dict[Key, Customer]:
        """`load` for several customers: the absent ones activated together (two statements). Call under every
        one's lock."""
        found = {key: self._active[key] for key in keys if key in self._active}
        for key, customer in found.items():
            self._active.move_to_end(key)
            customer.used = time.monotonic()
        absent = [key for key in keys if key not in found]
        return {**found, **(await self._activate(absent) if absent else {})}

    async def _activate(self, keys: Sequence[Key]) -> dict[Key, Customer]:
        db = await self._database()
        async with db.connection() as conn:
            saved = await checkpoints.load_many(conn, keys)
            newer = await events.load_many(conn, [(*key, saved[key].version if key in saved else 0) for key in keys])
        activated = {key: _fold(key, saved.get(key), newer.get(key, [])) for key in keys}
        self._active.update(activated)
        self._passivate()
        return activated

    async def read(self, key: Key) -> Customer:
        async with self.lock(key):
            return await self.load(key)

    def _passivate(self) -> None:
        """Forget idle customers (their state is in PostgreSQL); keep at most `max_active` in memory."""
        now = time.monotonic()
        while self._active and (len(self._active) > self._max_active
                                or next(iter(self._active.values())).used < now - self._idle):
            key, _ = self._active.popitem(last=False)
            lock = self._locks.get(key)
            if lock is not None and not lock.locked():
                del self._locks[key]

    async def decide(self, key: Key, decider: Decider, retries: int = 3) -> Committed:
        """Load, decide and commit under the customer's lock (its own transaction). A lost race with another
        writer reloads and decides again, at most `retries` times. Idempotent as the decider is."""
        for _ in range(retries):
            async with self.lock(key):
                customer = await self.load(key)
                try:
                    db, now = await self._database(), await self._now()
                    async with db.transaction() as conn:
                        writes = Writes(now)
                        written = await self._write(conn, writes, key, customer, [decider], now)
                        await writes.flush(conn)
                except ConcurrencyConflict:
                    self._active.pop(key, None)  # another home wrote: reload and decide again
                    continue
                self._follow(customer, written)
            return written.committed
        raise ConcurrencyConflict(f"customer {key[1]}: gave up after {retries} conflicting writes")

    async def decide_many(self, groups: dict[Key, list[Decider]], prepare: Prepare | None = None) -> list[Committed]:
        """Several customers in one transaction (group commit): each customer's decisions stay whole, and all of
        them commit together or none does (the caller then decides each on its own). Locks are taken in one
        global order, so two batches never wait on each other in a cycle. The writes go out together at the end,
        one statement per table (`actors.persist.Writes`)."""
        async with contextlib.AsyncExitStack() as held:
            for key in sorted(groups):
                await held.enter_async_context(self.lock(key))
            customers = await self.load_many(list(groups))
            db, now = await self._database(), await self._now()
            async with db.transaction() as conn:
                if prepare is not None:
                    await prepare(conn)
                writes = Writes(now)
                histories = await self._contexts.card_histories(
                    conn, [(key[0], customers[key].state) for key in groups], now)
                written = [await self._write(conn, writes, key, customers[key], groups[key], now, histories)
                           for key in groups]
                await writes.flush(conn)
            for one in written:
                self._follow(customers[one.committed.key], one)
        return [one.committed for one in written]

    async def _write(self, conn: Conn, writes: Writes, key: Key, customer: Customer, deciders: Sequence[Decider],
                     now: datetime, histories: CardHistories | None = None) -> _Written:
        """Decide one customer. Its network budget counts the attempts decided before it in this transaction:
        from the batch's card histories when none of them was on its cards, else read again after they are
        written."""
        history = None
        if histories is not None:
            cards, history = histories.of(key[0], customer.state)
            if writes.touches(key[0], cards):
                history = None
        if history is None and writes.has_attempts:
            await writes.flush_attempts(conn)
        ctx = await self._contexts(conn, key[0], customer.state, now, history)
        state, decisions, applied = customer.state, [], []
        for decider in deciders:
            made = await decider(conn, state, ctx)
            applied.append(made is not None)
            if made:
                decisions += made
                state = made[-1].state
        version = writes.add(key[0], key[1], customer.version, decisions)
        return _Written(Committed(key, decisions, applied), version)

    def _follow(self, customer: Customer, written: _Written) -> None:
        """Committed: now the memory may follow, and the metrics count it."""
        if written.committed.decisions:
            customer.state, customer.version = written.committed.decisions[-1].state, written.version
        self._on_commit(written.committed.decisions)

    def forget(self, key: Key) -> None:
        self._active.pop(key, None)


def _fold(key: Key, saved: Checkpoint | None, newer: list[RecordedEvent]) -> Customer:
    """A customer from its checkpoint (or nothing) and the events written after it."""
    state, version = (saved.state, saved.version) if saved else (empty_state(*key), 0)
    for event in newer:
        state, version = evolve(state, event.event_type, event.payload), event.version
    return Customer(version, state)


@dataclass(frozen=True, slots=True)
class _Written:
    committed: Committed
    version: int
