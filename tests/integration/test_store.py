"""The event store against real PostgreSQL: migrations, appends, races, timers and outbox claims."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from store import ConcurrencyConflict, Database, checkpoints, events, outbox, timers
from store.events import NewEvent
from store.migrate import apply_migrations

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_reapplying_migrations_is_a_no_op(database_url: str) -> None:
    assert apply_migrations(database_url) == []


def test_checkpoints_and_bodies_are_compressed_with_lz4_where_the_server_has_it(database_url: str) -> None:
    """Migration 0044: a rewritten checkpoint of a customer with dozens of cases costs PostgreSQL far less with lz4;
    a server built without lz4 keeps pglz."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        has_lz4 = conn.execute("SELECT 'lz4' = ANY (enumvals) FROM pg_settings"
                               " WHERE name = 'default_toast_compression'").fetchone()
        methods = dict(conn.execute(
            "SELECT attrelid::regclass::text || '.' || attname, attcompression::text FROM pg_attribute"
            " WHERE (attrelid, attname) IN (('checkpoints'::regclass, 'state'), ('deliveries'::regclass, 'body'))"
        ).fetchall())
        assert methods == ({"checkpoints.state": "l", "deliveries.body": "l"} if has_lz4 and has_lz4[0] else
                           {"checkpoints.state": "", "deliveries.body": ""})
        if has_lz4 and has_lz4[0]:  # a stored value that needs compressing is compressed with lz4
            big = {"cases": {f"in_{n}": {"state": "retry_scheduled", "n": n} for n in range(400)}}
            conn.execute("INSERT INTO checkpoints (tenant_id, stream_id, version, state) VALUES"
                         " ('default', 'cus_lz4_probe', 1, %s)", (Jsonb(big),))
            row = conn.execute("SELECT pg_column_compression(state) FROM checkpoints"
                               " WHERE stream_id = 'cus_lz4_probe'").fetchone()
            assert row is not None and row[0] == "lz4"


async def test_appended_events_load_back_in_order(db: Database) -> None:
    async with db.transaction() as conn:
        version = await events.append(conn, "default", "s-roundtrip", 0, [NewEvent("A", {"n": 1}), NewEvent("B", {})])
    async with db.connection() as conn:
        loaded = await events.load(conn, "default", "s-roundtrip")
    assert version == 2
    assert [(e.version, e.event_type, e.payload) for e in loaded] == [(1, "A", {"n": 1}), (2, "B", {})]


async def test_appending_at_a_stale_version_raises_concurrency_conflict(db: Database) -> None:
    async with db.transaction() as conn:
        await events.append(conn, "default", "s-stale", 0, [NewEvent("A", {})])
    with pytest.raises(ConcurrencyConflict):
        async with db.transaction() as conn:
            await events.append(conn, "default", "s-stale", 0, [NewEvent("B", {})])


async def test_two_concurrent_appenders_exactly_one_wins_and_nothing_is_half_written(db: Database) -> None:
    async def writer(tag: str) -> str:
        try:
            async with db.transaction() as conn:
                await events.append(conn, "default", "s-race", 0, [NewEvent(tag, {}), NewEvent(tag, {})])
                await checkpoints.save(conn, "default", "s-race", 2, {"by": tag})
                await asyncio.sleep(0.05)
            return "won"
        except ConcurrencyConflict:
            return "lost"

    results = await asyncio.gather(writer("X"), writer("Y"))
    assert sorted(results) == ["lost", "won"]
    async with db.connection() as conn:
        loaded = await events.load(conn, "default", "s-race")
        cp = await checkpoints.load(conn, "default", "s-race")
    assert len(loaded) == 2 and len({e.event_type for e in loaded}) == 1
    assert cp is not None and cp.state["by"] == loaded[0].event_type


async def test_a_due_timer_is_claimed_by_exactly_one_of_many_claimers(db: Database) -> None:
    async with db.transaction() as conn:
        for i in range(20):
            await timers.schedule(conn, "default", f"t-{i}", "k", NOW - timedelta(seconds=i))

    async def claimer(n: int) -> list[int]:
        async with db.transaction() as conn:
            return [t.timer_id for t in await timers.claim_due(conn, NOW, f"w{n}", limit=7)]

    claimed = [tid for batch in await asyncio.gather(*(claimer(n) for n in range(6))) for tid in batch]
    assert len(claimed) == len(set(claimed)) == 20
    async with db.transaction() as conn:
        for tid in claimed:
            await timers.mark_fired(conn, tid)


async def test_an_outbox_row_is_claimed_by_exactly_one_of_many_claimers(db: Database) -> None:
    async with db.transaction() as conn:
        for i in range(15):
            await outbox.enqueue(conn, "default", "test-topic", f"claim-{i}", {"i": i}, available_at=NOW)
        assert not await outbox.enqueue(conn, "default", "test-topic", "claim-0", {"i": 0}, available_at=NOW)

    async def claimer(n: int) -> list[int]:
        return [r.outbox_id for r in await outbox.claim(db, NOW, f"w{n}", ("test-topic",), limit=4)]

    claimed = [oid for batch in await asyncio.gather(*(claimer(n) for n in range(6))) for oid in batch]
    assert len(claimed) == len(set(claimed)) == 15


async def test_rescheduling_a_timer_replaces_the_pending_one(db: Database) -> None:
    async with db.transaction() as conn:
        await timers.schedule(conn, "default", "t-replace", "invoice:1", NOW + timedelta(hours=1))
        await timers.schedule(conn, "default", "t-replace", "invoice:1", NOW + timedelta(hours=2))
        cur = await conn.execute("SELECT count(*) AS n FROM timers WHERE stream_id = 't-replace'"
                                 " AND fired_at IS NULL AND cancelled_at IS NULL")
        row = await cur.fetchone()
    assert row is not None and row["n"] == 1
    async with db.transaction() as conn:
        await timers.cancel(conn, "default", "t-replace", "invoice:1")
