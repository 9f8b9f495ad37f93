"""A batch's writes, one statement per table: every delivery of a batch claimed once with one statement, a lost race
retried without losing the claim, the timers' final settings as one statement after another would leave them, and
the batch append's version check. Real PostgreSQL, real deliveries, the real decision core."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from actors.contexts import TenantContexts
from actors.delivery_apply import DeliveryClaims, DeliveryDecider
from actors.home import CustomerHome
from actors.provider_keys import ProviderKeys
from store import ConcurrencyConflict, Database, deliveries, events, timers
from store.deliveries import DeliveryStatus, NewDelivery
from store.events import Append, NewEvent
from tests.support.deliveries import stored_failure

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, max_size=4)
    await database.open()
    yield database
    await database.close()


def _home(db: Database, database_url: str) -> CustomerHome:
    config = {"database_url": database_url, "planner": "default"}

    async def database() -> Database:
        return db

    async def now() -> datetime:
        return NOW

    return CustomerHome(database, now, TenantContexts(config, ProviderKeys(config)))


async def _batch(home: CustomerHome, items: list[dict[str, Any]]) -> list[list[bool]]:
    claims = DeliveryClaims(items)
    written = await home.decide_many({("default", i["customer_id"]): [DeliveryDecider(i, claims)] for i in items},
                                     prepare=claims.claim)
    return [w.applied for w in written]


async def test_a_batch_claims_every_delivery_once_and_a_repeat_applies_none(db: Database, database_url: str) -> None:
    home = _home(db, database_url)
    tag = uuid.uuid4().hex[:8]
    items = [await stored_failure(db, f"{n}{tag}") for n in range(5)]
    assert await _batch(home, items) == [[True]] * 5
    assert await _batch(_home(db, database_url), items) == [[False]] * 5  # another home, the same deliveries
    async with db.connection() as conn:
        for item in items:
            assert await deliveries.lock_for_apply(conn, item["delivery_id"]) == DeliveryStatus.APPLIED
            assert await events.stream_version(conn, "default", item["customer_id"]) == 1  # written once


async def test_a_lost_race_decides_again_and_the_delivery_is_still_claimed(db: Database, database_url: str) -> None:
    home = _home(db, database_url)
    item = await stored_failure(db, uuid.uuid4().hex[:8])
    key = ("default", item["customer_id"])
    await home.read(key)  # the home holds the customer at version 0 …
    async with db.transaction() as conn:  # … when another writer appends: the first try rolls back
        await events.append(conn, "default", item["customer_id"], 0, [NewEvent("ProfileUpdated", {
            "profile": {"country": "FR"}, "request_id": "elsewhere", "at": NOW.isoformat()})])
    decider = DeliveryDecider(item)
    assert (await home.decide(key, decider)).applied == [True]
    assert (await home.decide(key, decider)).applied == [False]  # the retry's claim committed with its decisions
    async with db.connection() as conn:
        assert await deliveries.lock_for_apply(conn, item["delivery_id"]) == DeliveryStatus.APPLIED


async def test_ignored_and_quarantined_deliveries_are_never_claimed(db: Database) -> None:
    tag = uuid.uuid4().hex[:8]
    a, b = await stored_failure(db, f"a{tag}"), await stored_failure(db, f"b{tag}")
    async with db.transaction() as conn:
        await deliveries.set_status(conn, a["delivery_id"], DeliveryStatus.IGNORED)
        await deliveries.set_status(conn, b["delivery_id"], DeliveryStatus.QUARANTINED, "unusable")
        assert await deliveries.claim_for_apply(conn, [a["delivery_id"], b["delivery_id"], -1]) == {}


async def test_the_last_timer_setting_of_a_batch_wins(db: Database) -> None:
    stream = f"cus_{uuid.uuid4().hex[:8]}"
    due = NOW + timedelta(hours=3)
    async with db.transaction() as conn:
        await timers.schedule(conn, "default", stream, "invoice:in_1", NOW, {"action": "old"})
        await timers.set_many(conn, [timers.TimerSet("default", stream, "invoice:in_1", due, {"action": "retry"}),
                                     timers.TimerSet("default", stream, "invoice:in_2", None, {})])
        cur = await conn.execute("SELECT timer_key, due_at, payload FROM timers WHERE stream_id = %s"
                                 " AND cancelled_at IS NULL", (stream,))
        assert await cur.fetchall() == [{"timer_key": "invoice:in_1", "due_at": due, "payload": {"action": "retry"}}]


async def test_a_batch_append_refuses_a_stream_that_moved_and_writes_nothing(db: Database) -> None:
    a, b = f"cus_{uuid.uuid4().hex[:8]}", f"cus_{uuid.uuid4().hex[:8]}"
    async with db.transaction() as conn:
        await events.append(conn, "default", b, 0, [NewEvent("ProfileUpdated", {"profile": {}})])
    with pytest.raises(ConcurrencyConflict):
        async with db.transaction() as conn:
            await events.append_many(conn, [Append("default", a, 0, [NewEvent("X", {"n": 1})]),
                                            Append("default", b, 0, [NewEvent("X", {"n": 2})])])
    async with db.connection() as conn:
        assert await events.stream_version(conn, "default", a) == 0
        assert await events.stream_version(conn, "default", b) == 1


async def test_a_flush_stores_each_event_once_and_a_second_copy_in_it_is_a_duplicate(db: Database) -> None:
    tag = uuid.uuid4().hex[:8]

    def delivery(event_id: str) -> NewDelivery:
        return NewDelivery("default", "stripe", event_id, "invoice.payment_failed", f"cus_{tag}", b'{"id": "x"}',
                           {"stripe-signature": "t=1,v1=ab"}, DeliveryStatus.RECEIVED, None)

    first = await deliveries.insert_many(db, [delivery(f"evt_a{tag}"), delivery(f"evt_b{tag}"),
                                              delivery(f"evt_a{tag}")])
    assert first[0] is not None and first[1] is not None and first[2] is None
    again = await deliveries.insert_many(db, [delivery(f"evt_b{tag}"), delivery(f"evt_c{tag}")])
    assert again[0] is None and again[1] is not None
