"""The decision path's keyed statements find their rows by key on tables PostgreSQL has never analyzed.

A fresh installation (and the first minute of a billing run, before autovacuum's first ANALYZE) has no column
statistics: the planner then assumes `fired_at IS NULL AND cancelled_at IS NULL` holds for 0.0025 % of the rows and
takes a partial index over every pending row as nearly free — a batch that cancels 100 timers scanned all 20,000
pending ones, so each batch cost more than the last. Each statement here runs for real through the store's own
function (recorded), then again under `EXPLAIN ANALYZE` in a rolled-back transaction, on a fresh database with
autovacuum off and 20,000 pending rows per table; the rows its scans examine must stay proportional to its keys.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from store import Database, checkpoints, deliveries, outbox, timers
from store.migrate import apply_migrations

PENDING = 20_000
NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
#: rows a keyed statement may examine per key (index entries, heap rows, rows removed by a filter), plus a constant
PER_KEY, SLACK = 4, 50


@contextlib.contextmanager
def never_analyzed(server_url: str) -> Iterator[str]:
    """A fresh database migrated by the real runner, autovacuum off on the tables these tests fill."""
    from tests.conftest import _with_database

    name = f"payrisk_plans_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(server_url, name)
    try:
        apply_migrations(url)
        with psycopg.connect(url, autocommit=True) as conn:
            for table in ("timers", "deliveries", "outbox", "case_facts", "checkpoints"):
                conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
            conn.execute("INSERT INTO tenants (tenant_id, name) VALUES ('default', 'default') ON CONFLICT DO NOTHING")
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def add_pending_timers(conn: psycopg.Connection[Any], count: int) -> None:
    conn.execute("INSERT INTO timers (tenant_id, stream_id, timer_key, due_at) SELECT 'default', 'cus_' || g,"
                 " 'invoice:in_' || g, %s FROM generate_series(1, %s) g", (NOW + timedelta(days=1), count))


@pytest.fixture(scope="module")
def fresh_url(server_url: str) -> Iterator[str]:
    """A database whose tables hold PENDING pending rows and were never analyzed."""
    with never_analyzed(server_url) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            add_pending_timers(conn, PENDING)
            conn.execute("INSERT INTO deliveries (tenant_id, provider, provider_event_id, event_type, customer_id,"
                         " body, headers) SELECT 'default', 'stripe', 'evt_' || g, 'invoice.payment_failed',"
                         " 'cus_' || g, '\\x7b7d'::bytea, '{}' FROM generate_series(1, %s) g", (PENDING,))
            conn.execute("INSERT INTO outbox (tenant_id, topic, idempotency_key, stream_id, payload, available_at)"
                         " SELECT 'default', 'email', 'k_' || g, 'cus_' || g, jsonb_build_object('customer_id',"
                         " 'cus_' || g), %s - g * interval '1 ms' FROM generate_series(1, %s) g",
                         (NOW - timedelta(minutes=1), PENDING))
            conn.execute("UPDATE outbox SET claimed_by = 'elsewhere', claimed_at = %s WHERE outbox_id %% 1000 = 0",
                         (NOW - timedelta(seconds=30),))  # 20 leases in flight: those customers wait
            analyzed = conn.execute("SELECT count(*) FROM pg_stat_user_tables WHERE relname IN ('timers', 'deliveries',"
                                    " 'outbox', 'case_facts', 'checkpoints')"
                                    " AND coalesce(last_analyze, last_autoanalyze) IS NOT NULL").fetchone()
            assert analyzed == (0,)
        yield url


@pytest.fixture
async def fresh(fresh_url: str) -> AsyncIterator[Database]:
    database = Database(fresh_url, max_size=2)
    await database.open()
    yield database
    await database.close()


class Recording:
    """A connection that remembers every statement run through it (and runs it)."""

    def __init__(self, conn: Any) -> None:
        self.conn, self.statements = conn, []

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        self.statements.append((query, params))
        return await self.conn.execute(query, params, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


class RecordingDatabase:
    """A database whose connection is the recording one (for the store's functions that take the database)."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Recording]:
        yield self.recording

    transaction = connection


class Rollback(Exception):
    pass


async def _examined(db: Database, run: Any) -> list[tuple[str, int]]:
    """Run `run(conn)` in a rolled-back transaction; then the statements it ran, in order, under EXPLAIN ANALYZE
    (rolled back too): the rows each one's scans examined."""
    recording: Recording | None = None
    try:
        async with db.transaction() as conn:
            recording = Recording(conn)
            await run(recording)
            raise Rollback
    except Rollback:
        pass
    assert recording is not None and recording.statements
    found = []
    try:
        async with db.transaction() as conn:
            for query, params in recording.statements:
                text = query.decode() if isinstance(query, bytes) else str(query)
                row = await (await conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {text}", params)).fetchone()
                found.append((text[:80], _scanned(next(iter(row.values()))[0]["Plan"])))
            raise Rollback
    except Rollback:
        pass
    return found


def _scanned(node: dict[str, Any]) -> int:
    own = 0  # rows read from tables and indexes (a bitmap's heap scan counts its index scan's rows once)
    if "Scan" in node["Node Type"] and node["Node Type"] not in ("Function Scan", "Bitmap Index Scan"):
        own = (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
               + node.get("Rows Removed by Index Recheck", 0)) * max(node.get("Actual Loops", 1), 1)
    return own + sum(_scanned(child) for child in node.get("Plans", []))


def _assert_keyed(found: list[tuple[str, int]], keys: int) -> None:
    for statement, rows in found:
        assert rows <= PER_KEY * keys + SLACK, f"{rows} rows examined for {keys} keys by: {statement}"


async def test_a_batch_of_timer_settings_cancels_by_key(fresh: Database) -> None:
    settings = [timers.TimerSet("default", f"cus_{n}", f"invoice:in_{n}", NOW + timedelta(hours=n % 2 * 5),
                                {"action": "retry"}) for n in range(1, 101)]
    settings[::2] = [timers.TimerSet(s.tenant_id, s.stream_id, s.timer_key, None, {}) for s in settings[::2]]

    async def run(conn: Any) -> None:
        await timers.set_many(conn, settings)
        cur = await conn.conn.execute("SELECT count(*) AS n FROM timers WHERE cancelled_at IS NOT NULL")
        assert (await cur.fetchone())["n"] == 100  # every named pending timer cancelled, once

    _assert_keyed(await _examined(fresh, run), 100)


async def test_a_timer_fires_by_its_id(fresh: Database) -> None:
    async def run(conn: Any) -> None:
        assert await timers.mark_fired(conn, 17) is True

    _assert_keyed(await _examined(fresh, run), 1)


async def test_a_batch_claims_its_deliveries_by_id(fresh: Database) -> None:
    ids = list(range(500, 600))

    async def run(conn: Any) -> None:
        assert set(await deliveries.claim_for_apply(conn, ids)) == set(ids)

    _assert_keyed(await _examined(fresh, run), 100)


async def test_an_outbox_row_is_settled_by_its_id(fresh: Database) -> None:
    async def run(conn: Any) -> None:
        await conn.conn.execute("UPDATE outbox SET claimed_by = 'w' WHERE outbox_id IN (5, 6, 7)")
        await outbox.mark_sent(conn, 5, NOW)
        assert await outbox.bury(conn, 6, "w", NOW, "refused") is True
        await outbox.reschedule(conn, 7, "w", NOW + timedelta(minutes=5), "later", failed=True)

    _assert_keyed(await _examined(fresh, run), 1)


async def test_a_hand_off_marks_its_deliveries_dispatched_by_id(fresh: Database) -> None:
    async def run(conn: Any) -> None:
        await deliveries.mark_dispatched(RecordingDatabase(conn), list(range(700, 800)))

    _assert_keyed(await _examined(fresh, run), 100)


async def test_a_timer_set_on_its_own_replaces_the_pending_one_by_key(fresh: Database) -> None:
    async def run(conn: Any) -> None:
        await timers.schedule(conn, "default", "cus_9", "invoice:in_9", NOW + timedelta(hours=2), {"action": "x"})

    _assert_keyed(await _examined(fresh, run), 1)


async def test_the_scheduler_and_the_outbox_claim_what_is_due_not_everything_pending(fresh: Database) -> None:
    """20,000 timers not due yet, 20,000 emails due: a claim of 50 reads about 50 of them."""
    async def run(conn: Any) -> None:
        assert await timers.claim_due(conn, NOW, "w", limit=50) == []
        assert len(await outbox.claim(RecordingDatabase(conn), NOW, "w", ("email",), limit=50)) == 50

    _assert_keyed(await _examined(fresh, run), 50)


async def test_a_checkpoint_refreshes_its_customers_cases_by_key(fresh_url: str) -> None:
    """The checkpoint's trigger rewrites the customer's cases in `case_facts`. A connection that wrote its first
    checkpoints while the table was small keeps its cached plans; after the table grew to 20,000 cases, writing 20
    checkpoints (a case kept, or a case dropped) still reads about their own rows, not every case of the tenant."""
    def state(customer: str, cases: list[str]) -> dict[str, Any]:
        return {"customer_id": customer, "cases": {invoice: {
            "state": "retrying", "amount_due": 100, "currency": "usd", "attempts_made": 1,
            "first_failed_at": NOW.isoformat()} for invoice in cases}}

    tag = uuid.uuid4().hex[:6]
    db = Database(fresh_url, max_size=1)  # one connection: one backend, its plans cached
    await db.open()
    try:
        for batch in range(10):
            customers = [f"cus_cf{batch}_{n}_{tag}" for n in range(10)]
            async with db.transaction() as conn:
                await checkpoints.save_many(conn, [("default", c, 1, state(c, ["in_a", "in_b"])) for c in customers])
            async with db.transaction() as conn:
                await checkpoints.save_many(conn, [("default", c, 2, state(c, ["in_a", "in_b"])) for c in customers])
        with psycopg.connect(fresh_url, autocommit=True) as other:
            other.execute("INSERT INTO case_facts (tenant_id, customer_id, invoice_id, state, amount_due, currency,"
                          " attempts_made, category, reason, segment, strategy, provider, recovered_amount,"
                          " recovered_by, first_failed_at) SELECT 'default', 'cus_' || g, 'in_' || g, 'retrying', 100,"
                          " 'usd', 1, 'soft', 'insufficient_funds', 'none', 'none', 'stripe', 0, 'open',"
                          " %s - g * interval '1 s' FROM generate_series(1, %s) g", (NOW, PENDING))
        read_before = await _blocks_read(db, "case_facts")
        async with db.transaction() as conn:  # half keep both cases, half drop one
            await checkpoints.save_many(conn, [("default", c, 3, state(c, ["in_a", "in_b"] if n % 2 else ["in_a"]))
                                               for n, c in enumerate(customers)])
        read = await _blocks_read(db, "case_facts") - read_before
        async with db.connection() as conn:
            cur = await conn.execute("SELECT count(*) AS n FROM case_facts WHERE customer_id = ANY(%s)", (customers,))
            assert (await cur.fetchone())["n"] == 15
    finally:
        await db.close()
    # writing a case costs a few blocks per index; reading every case of the tenant costs hundreds more
    assert read <= 20 * len(customers) * 2, f"{read} case_facts blocks read to refresh 10 customers' 20 cases"


async def test_timers_cancelled_by_a_connection_that_began_on_a_small_table_are_still_found_by_key(
        server_url: str) -> None:
    """A connection cancels timers while the table holds a few dozen; after it grew to 60,000 pending, a batch
    still reads about its own timers (a plan cached on the small table read all of them: a sequential scan)."""
    with never_analyzed(server_url) as url:
        db = Database(url, max_size=1)  # one connection: one backend, statements prepared after a few runs
        await db.open()
        try:
            def batch(n: int) -> list[timers.TimerSet]:
                return [timers.TimerSet("default", f"cus_s{n}_{k}", "invoice:in_1", NOW + timedelta(hours=1),
                                        {"action": "retry"}) for k in range(10)]

            for n in range(12):  # each setting replaces the one before (a cancel, then an insert)
                for _ in range(2):
                    async with db.transaction() as conn:
                        await timers.set_many(conn, batch(n))
            with psycopg.connect(url, autocommit=True) as other:
                add_pending_timers(other, 3 * PENDING)
            before = await _blocks_read(db, "timers")
            async with db.transaction() as conn:
                await timers.set_many(conn, batch(11))
            read = await _blocks_read(db, "timers") - before
        finally:
            await db.close()
    # a lookup, an update and an insert per key, in the table and its three indexes (~240 blocks); a scan of 60,000
    # rows reads ~750 more
    assert read <= 40 * 10, f"{read} blocks of timers read to replace 10 customers' timers"


async def _blocks_read(db: Database, table: str) -> int:
    """Blocks of `table` (its heap and indexes) read so far (this backend's counts flushed first)."""
    async with db.connection() as conn:
        await conn.execute("SELECT pg_stat_force_next_flush()")
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        cur = await conn.execute("SELECT heap_blks_read + heap_blks_hit + idx_blks_read + idx_blks_hit AS n"
                                 " FROM pg_statio_user_tables WHERE relname = %s", (table,))
        return int((await cur.fetchone())["n"])
