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
from actors.domain.decisions import Decision
from actors.home import CustomerHome
from actors.provider_keys import ProviderKeys
from actors.timer_apply import TimerClaims, TimerDecider
from store import ConcurrencyConflict, Database, attempts, deliveries, events, timers
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


async def test_a_batch_that_carries_a_delivery_twice_applies_it_once(db: Database, database_url: str) -> None:
    """A hand-off sent again while its first copy still waited in the dispatcher's buffer: both copies reach the
    shard in one batch. The batch's claim is taken once, so the second copy is not applied (it was, twice, in one
    transaction, before claims were taken rather than looked up)."""
    home = _home(db, database_url)
    tag = uuid.uuid4().hex[:8]
    item = await stored_failure(db, f"twice{tag}")
    claims = DeliveryClaims([item, dict(item)])
    written = await home.decide_many({("default", item["customer_id"]): [DeliveryDecider(item, claims),
                                                                          DeliveryDecider(dict(item), claims)]},
                                     prepare=claims.claim)
    assert [w.applied for w in written] == [[True, False]]
    async with db.connection() as conn:
        assert await events.stream_version(conn, "default", item["customer_id"]) == 1  # one PaymentFailed


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


async def test_a_batch_budget_counts_the_attempts_decided_before_each_customer_on_its_cards(
        db: Database, database_url: str) -> None:
    """The batch reads its customers' card histories once; a customer whose card got an attempt earlier in the same
    transaction reads the ledger again and counts it, as one customer decided after another would."""
    home = _home(db, database_url)
    tag = uuid.uuid4().hex[:8]
    shared, own, fresh = f"fp_shared_{tag}", f"fp_own_{tag}", f"fp_fresh_{tag}"
    earlier = NOW - timedelta(days=2)
    async with db.transaction() as conn:
        await attempts.record(conn, attempts.Attempt("default", f"k_{tag}", f"cus_c{tag}", "in_old", 1, "stripe",
                                                     "failed", 100, "usd", own, "visa", earlier))
    keys = [("default", f"cus_{name}{tag}") for name in "abc"]
    for key, card in zip(keys, (fresh, shared, own), strict=True):
        customer = await home.read(key)  # a case on the card, as a past failure would have left it
        customer.state = {**customer.state, "cases": {"in_1": {"state": "failed", "card": {"card_fingerprint": card}}}}
    seen: dict[str, Any] = {}

    def decider(key: tuple[str, str], ledger_card: str | None) -> Any:
        async def decide(conn: Any, state: dict[str, Any], ctx: Any) -> list[Decision]:
            seen[key[1]] = dict(ctx.card_history)
            ledger = [attempts.Attempt("default", f"provider:stripe:evt_{key[1]}", key[1], f"in_{key[1]}", 1,
                                       "stripe", "failed", 100, "usd", ledger_card, "visa", NOW, NOW, "provider")]
            payload = {"profile": {}, "request_id": key[1], "at": NOW.isoformat()}
            return [Decision(state=state, events=[("ProfileUpdated", payload)],
                             ledger=ledger if ledger_card else [])]
        return decide

    # a: an attempt on the shared card; b: has the shared card; c: its own card, with an attempt from before
    await home.decide_many({keys[0]: [decider(keys[0], shared)], keys[1]: [decider(keys[1], None)],
                            keys[2]: [decider(keys[2], None)]})
    assert seen[keys[0][1]] == {}  # a fresh card
    assert seen[keys[1][1]] == {shared: [NOW]}  # a's attempt, decided before b in this transaction
    assert seen[keys[2][1]] == {own: [earlier]}  # from the batch's one read
    async with db.connection() as conn:
        assert await attempts.card_history(conn, "default", [shared], NOW - timedelta(days=30)) == {shared: [NOW]}


async def test_a_batch_fires_each_pending_timer_once_and_a_repeat_fires_none(db: Database, database_url: str) -> None:
    """Timers of two customers in one batch: the pending ones fire (marked with one statement, in the batch's
    transaction), a cancelled one does not, and the same batch again fires nothing."""
    tag = uuid.uuid4().hex[:8]
    due = []
    async with db.transaction() as conn:
        for n in range(4):
            stream = f"cus_t{n % 2}{tag}"
            payload = {"action": "classify", "invoice_id": f"in_{n}"}
            timer_id = await timers.schedule(conn, "default", stream, f"invoice:in_{n}", NOW, payload)
            due.append({"timer_id": timer_id, "tenant_id": "default", "stream_id": stream, "payload": payload})
        await timers.cancel(conn, "default", f"cus_t1{tag}", "invoice:in_3")

    async def fire(home: CustomerHome) -> dict[int, bool]:
        claims = TimerClaims(due)
        groups: dict[tuple[str, str], list[TimerDecider]] = {}
        for timer in due:
            groups.setdefault(("default", timer["stream_id"]), []).append(TimerDecider(timer, claims))
        written = await home.decide_many(groups, prepare=claims.claim)
        by_key = {w.key: w.applied for w in written}
        fired = {}
        for key in by_key:
            for timer, applied in zip([t for t in due if t["stream_id"] == key[1]], by_key[key], strict=True):
                fired[timer["timer_id"]] = applied
        return fired

    ids = [t["timer_id"] for t in due]
    assert await fire(_home(db, database_url)) == {ids[0]: True, ids[1]: True, ids[2]: True, ids[3]: False}
    assert await fire(_home(db, database_url)) == dict.fromkeys(ids, False)
    async with db.connection() as conn:
        cur = await conn.execute("SELECT timer_id FROM timers WHERE timer_id = ANY(%s) AND fired_at IS NOT NULL",
                                 (ids,))
        assert sorted(r["timer_id"] for r in await cur.fetchall()) == ids[:3]
