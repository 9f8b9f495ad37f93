"""The customer home's one commit path, without Ray: a batch writes several customers in one transaction or none;
after a failed batch, each delivery decided on its own is applied exactly once (the shard's fallback); a lost race
with another writer reloads and decides again. Real PostgreSQL, real deliveries, the real decision core."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from actors.contexts import TenantContexts
from actors.domain.decisions import Context, Decision
from actors.home import Committed, CustomerHome, Key
from actors.provider_keys import ProviderKeys
from gateway.redispatch import normalize_stored
from store import ConcurrencyConflict, Conn, Database, deliveries, events
from store.deliveries import DeliveryStatus, NewDelivery
from store.events import NewEvent
from tests.support.stripe_events import envelope, invoice

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, max_size=4)
    await database.open()
    yield database
    await database.close()


def _home(db: Database, database_url: str, committed: list[list[Decision]]) -> CustomerHome:
    config = {"database_url": database_url, "planner": "default"}

    async def database() -> Database:
        return db

    async def now() -> datetime:
        return NOW

    return CustomerHome(database, now, TenantContexts(config, ProviderKeys(config)), on_commit=committed.append)


class Delivery:
    """Decide one stored delivery, once (what the shard's delivery decider does, minus the ledger)."""

    def __init__(self, delivery_id: int, customer: str, items: list[dict[str, Any]]) -> None:
        self.delivery_id, self.customer, self.items = delivery_id, customer, items

    async def __call__(self, conn: Conn, state: dict[str, Any], ctx: Context) -> list[Decision] | None:
        from actors.domain.decide import decide_inbound

        status = await deliveries.lock_for_apply(conn, self.delivery_id)
        if status is None or status in deliveries.FINAL:
            return None
        made = []
        for event in self.items:
            made.append(decide_inbound(state, event, ctx, self.delivery_id))
            state = made[-1].state
        await deliveries.mark_applied(conn, self.delivery_id)
        return made


async def _stored_failure(db: Database, tag: str) -> Delivery:
    customer = f"cus_{tag}"
    body = envelope(f"evt_{tag}", "invoice.payment_failed", invoice(f"in_{tag}", customer))
    customer_id, items = normalize_stored("stripe", body)
    assert customer_id == customer
    [delivery_id] = await deliveries.insert_many(db, [NewDelivery(
        "default", "stripe", f"evt_{tag}", "invoice.payment_failed", customer, body, {}, DeliveryStatus.RECEIVED,
        None)])
    assert delivery_id is not None
    return Delivery(delivery_id, customer, items)


async def _version(db: Database, key: Key) -> int:
    async with db.connection() as conn:
        return await events.stream_version(conn, *key)


async def test_a_batch_commits_every_customer_together_and_memory_follows(db: Database, database_url: str) -> None:
    committed: list[list[Decision]] = []
    home = _home(db, database_url, committed)
    tag = uuid.uuid4().hex[:8]
    a, b = await _stored_failure(db, f"a{tag}"), await _stored_failure(db, f"b{tag}")
    written = await home.decide_many({("default", a.customer): [a], ("default", b.customer): [b]})
    assert [w.applied for w in written] == [[True], [True]]
    for delivery in (a, b):
        key = ("default", delivery.customer)
        customer = await home.read(key)
        assert customer.version == await _version(db, key) > 0
        assert customer.state["cases"][f"in_{delivery.customer.removeprefix('cus_')}"]["state"] == "classifying"
    again = await home.decide_many({("default", a.customer): [a]})
    assert again[0].applied == [False]  # a delivery is applied at most once


async def test_a_failed_batch_writes_nothing_and_each_delivery_then_applies_once_on_its_own(
        db: Database, database_url: str) -> None:
    committed: list[list[Decision]] = []
    home = _home(db, database_url, committed)
    tag = uuid.uuid4().hex[:8]
    a, b = await _stored_failure(db, f"a{tag}"), await _stored_failure(db, f"b{tag}")
    key_a, key_b = ("default", a.customer), ("default", b.customer)
    await home.read(key_b)  # b's home holds b in memory at version 0 …
    async with db.transaction() as conn:  # … when another writer appends to b's stream
        await events.append(conn, "default", b.customer, 0, [NewEvent("ProfileUpdated", {
            "profile": {"country": "FR"}, "request_id": "elsewhere", "at": NOW.isoformat()})])
    with pytest.raises(ConcurrencyConflict):
        await home.decide_many({key_a: [a], key_b: [b]})
    assert await _version(db, key_a) == 0, "a's decisions were committed although the batch failed"
    assert (await home.read(key_a)).version == 0 and committed == []
    outcomes: list[Committed] = [await home.decide(key_a, a), await home.decide(key_b, b)]  # the fallback
    assert [c.applied for c in outcomes] == [[True], [True]]
    assert (await home.read(key_b)).state["profile"]["country"] == "FR"  # reloaded: the other writer's event kept
    assert [await home.decide(key, d) for key, d in ((key_a, a), (key_b, b))][0].applied == [False]
    async with db.connection() as conn:
        for delivery in (a, b):
            assert await deliveries.lock_for_apply(conn, delivery.delivery_id) == DeliveryStatus.APPLIED
