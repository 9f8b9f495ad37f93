"""The daily rollups (migration 0040) equal a recomputation from their sources after every kind of write, committed
or still in its transaction; two writers never wait on each other before they commit; the migration counts the rows
already there; and the analytics read from them give what the queries before the rollups gave (kept here as the
oracle), for windows of whole days and of partial ones."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from actors.domain import analytics as a
from store import analytics
from store.migrate import MIGRATIONS_DIR, yoyo_url

_KEYS = "('total', '')" + "".join(f", ('{d}', f.{d})" for d in a.DIMENSIONS)
RECOMPUTED_CASES = f"""
SELECT (f.first_failed_at AT TIME ZONE 'UTC')::date, f.currency, f.state, k.dimension, k.key, count(*),
       sum(f.amount_due), sum(f.recovered_amount), sum(f.attempts_made)
FROM case_facts f CROSS JOIN LATERAL (VALUES {_KEYS}) k (dimension, key)
WHERE f.tenant_id = %s GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
"""
ROLLED_UP_CASES = """
SELECT day, currency, state, dimension, key, cases, amount_due, recovered_amount, attempts_made
FROM case_daily WHERE tenant_id = %s AND cases <> 0 ORDER BY 1, 2, 3, 4, 5
"""
RECOMPUTED_ACTIVITY = """
SELECT ((payload->>'at')::timestamptz AT TIME ZONE 'UTC')::date, coalesce(payload->>'currency', 'unknown'),
       count(*) FILTER (WHERE event_type = 'PaymentFailed'),
       coalesce(sum((payload->>'amount_due')::bigint) FILTER (WHERE event_type = 'PaymentFailed'), 0),
       count(*) FILTER (WHERE event_type = 'InvoiceRecovered'),
       coalesce(sum((payload->>'amount')::bigint) FILTER (WHERE event_type = 'InvoiceRecovered'), 0)
FROM events WHERE tenant_id = %s AND event_type IN ('PaymentFailed', 'InvoiceRecovered') AND payload->>'at' IS NOT NULL
GROUP BY 1, 2 ORDER BY 1, 2
"""
ROLLED_UP_ACTIVITY = """
SELECT day, currency, failures, failed_amount, recoveries, recovered_amount FROM activity_daily
WHERE tenant_id = %s AND (failures <> 0 OR recoveries <> 0) ORDER BY 1, 2
"""

# The analytics as they read case_facts and the event log before the rollups (gateway/analytics.py before 0040).
_ORACLE_CASES = """
WITH cases AS (SELECT * FROM case_facts WHERE tenant_id = %(tenant)s
                 AND (%(start)s::timestamptz IS NULL OR first_failed_at >= %(start)s)
                 AND (%(end)s::timestamptz IS NULL OR first_failed_at < %(end)s))
"""
_ORACLE_AGGREGATES = """
  count(*) AS cases, sum(amount_due) AS failed_amount,
  count(*) FILTER (WHERE state = ANY(%(open)s)) AS open_cases,
  sum(amount_due) FILTER (WHERE state = ANY(%(open)s)) AS revenue_at_risk,
  count(*) FILTER (WHERE state = 'recovered') AS recovered_cases,
  sum(recovered_amount) FILTER (WHERE state = 'recovered') AS recovered_revenue,
  count(*) FILTER (WHERE state = ANY(%(lost)s)) AS lost_cases,
  sum(amount_due) FILTER (WHERE state = ANY(%(lost)s)) AS lost_amount,
  sum(attempts_made) AS retries,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM recovered_at - first_failed_at))
    FILTER (WHERE state = 'recovered' AND recovered_at IS NOT NULL) AS ttr_median,
  percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM recovered_at - first_failed_at))
    FILTER (WHERE state = 'recovered' AND recovered_at IS NOT NULL) AS ttr_p90
"""
ORACLE_SUMMARY = (_ORACLE_CASES + "SELECT currency, CASE"
                  + "".join(f" WHEN grouping({d}) = 0 THEN '{d}'" for d in a.DIMENSIONS)
                  + " ELSE 'total' END AS dimension, coalesce(" + ", ".join(a.DIMENSIONS) + ") AS key,"
                  + _ORACLE_AGGREGATES + " FROM cases GROUP BY GROUPING SETS ((currency), "
                  + ", ".join(f"(currency, {d})" for d in a.DIMENSIONS) + ")")  # fmt: skip
ORACLE_COHORT = (_ORACLE_CASES + "SELECT (first_failed_at AT TIME ZONE 'UTC')::date AS day, currency,"
                 + _ORACLE_AGGREGATES + " FROM cases GROUP BY 1, 2 ORDER BY 1, 2")  # fmt: skip
ORACLE_ACTIVITY = """
SELECT ((payload->>'at')::timestamptz AT TIME ZONE 'UTC')::date AS day, coalesce(payload->>'currency', 'unknown')
         AS currency,
       count(*) FILTER (WHERE event_type = 'PaymentFailed') AS failures,
       sum((payload->>'amount_due')::bigint) FILTER (WHERE event_type = 'PaymentFailed') AS failed_amount,
       count(*) FILTER (WHERE event_type = 'InvoiceRecovered') AS recoveries,
       sum((payload->>'amount')::bigint) FILTER (WHERE event_type = 'InvoiceRecovered') AS recovered_amount
FROM events
WHERE tenant_id = %(tenant)s AND event_type IN ('PaymentFailed', 'InvoiceRecovered') AND payload->>'at' IS NOT NULL
  AND (%(start)s::timestamptz IS NULL OR (payload->>'at')::timestamptz >= %(start)s)
  AND (%(end)s::timestamptz IS NULL OR (payload->>'at')::timestamptz < %(end)s)
GROUP BY 1, 2 ORDER BY 1, 2
"""

STATES = ["classifying", "retry_scheduled", "awaiting_customer", "recovered", "exhausted", "closed", "healthy"]
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def at(rng: random.Random) -> datetime:
    """A time within six days of T0, often close to a UTC midnight (the edges of days and windows)."""
    day, minute = rng.randrange(0, 6), rng.choice([0, 1, 59, 600, 1439, rng.randrange(0, 1440)])
    return T0 + timedelta(days=day, minutes=minute, seconds=rng.choice([0, 0, 30]))


def a_case(rng: random.Random, invoice: str) -> dict[str, Any]:
    state, failed = rng.choice(STATES), at(rng)
    case: dict[str, Any] = {
        "invoice_id": invoice, "state": state, "amount_due": rng.randrange(100, 90000),
        "currency": rng.choice(["usd", "eur"]), "attempts_made": rng.randrange(0, 4),
        "classification": rng.choice([None, {"category": "SOFT_DECLINE", "reason": "insufficient_funds"},
                                      {"category": "HARD_DECLINE", "reason": "lost_card"}]),
        "strategy": rng.choice([None, {"id": "standard", "version": rng.choice([1, 2]), "segment": "smb"}]),
        "provider": rng.choice([None, "stripe", "adyen"]),
        "first_failed_at": None if state == "healthy" else failed.isoformat(),
    }  # fmt: skip
    if state == "recovered":
        case.update(recovered_amount=case["amount_due"], recovered_via=rng.choice(["retry", "provider"]),
                    recovered_at=(failed + timedelta(minutes=rng.randrange(1, 9000))).isoformat())
    return case


def write_checkpoint(conn: psycopg.Connection[Any], tenant: str, customer: str, cases: dict[str, Any]) -> None:
    conn.execute("INSERT INTO checkpoints (tenant_id, stream_id, version, state) VALUES (%s, %s, 1, %s)"
                 " ON CONFLICT (tenant_id, stream_id) DO UPDATE SET version = checkpoints.version + 1,"
                 " state = excluded.state", (tenant, customer, Jsonb({"cases": cases})))  # fmt: skip


def append_event(conn: psycopg.Connection[Any], tenant: str, rng: random.Random) -> None:
    kind = rng.choice(["PaymentFailed", "InvoiceRecovered", "RetryScheduled"])
    amount = {"amount_due" if kind == "PaymentFailed" else "amount": rng.randrange(100, 9000)}
    payload = {"at": at(rng).isoformat(), "currency": rng.choice(["usd", "eur", None]), **amount}
    conn.execute("INSERT INTO events (tenant_id, stream_id, version, event_type, payload) VALUES (%s, %s,"
                 " (SELECT coalesce(max(version), 0) + 1 FROM events WHERE tenant_id = %s AND stream_id = 'log'),"
                 " %s, %s)", (tenant, "log", tenant, kind, Jsonb({k: v for k, v in payload.items() if v})))


def new_tenant(conn: psycopg.Connection[Any], prefix: str = "daily") -> str:
    tenant = f"{prefix}{uuid.uuid4().hex[:8]}"
    conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, %s)", (tenant, tenant))
    return tenant


def count(conn: psycopg.Connection[Any], sql: str, *args: Any) -> int:
    row = conn.execute(sql, args).fetchone()
    assert row is not None
    return int(row[0])


def assert_rollups_match(conn: psycopg.Connection[Any], tenant: str) -> None:
    assert conn.execute(ROLLED_UP_CASES, (tenant,)).fetchall() == conn.execute(RECOMPUTED_CASES, (tenant,)).fetchall()
    assert (conn.execute(ROLLED_UP_ACTIVITY, (tenant,)).fetchall()
            == conn.execute(RECOMPUTED_ACTIVITY, (tenant,)).fetchall())  # fmt: skip
    assert count(conn, "SELECT count(*) FROM case_daily WHERE tenant_id = %s AND cases = 0"
                 " AND (amount_due, recovered_amount, attempts_made) <> (0, 0, 0)", tenant) == 0  # left: all zeros


def test_the_rollups_equal_a_recomputation_through_inserts_updates_and_deletes(database_url: str) -> None:
    rng = random.Random(11)
    with psycopg.connect(database_url, autocommit=True) as conn:
        tenant = new_tenant(conn)
        customers = [f"cus_{i}" for i in range(30)]
        for round_no in range(6):
            with conn.transaction():  # several writes per transaction: netted when it commits
                for customer in rng.sample(customers, 12):
                    write_checkpoint(conn, tenant, customer, {f"in_{customer}_{n}": a_case(rng, f"in_{customer}_{n}")
                                                              for n in range(rng.randrange(0, 3))})
                for _ in range(8):
                    append_event(conn, tenant, rng)
            if round_no == 3:
                conn.execute("DELETE FROM checkpoints WHERE tenant_id = %s AND stream_id = ANY(%s)",
                             (tenant, customers[:4]))
                conn.execute("UPDATE events SET payload = payload || '{\"currency\": \"gbp\"}' WHERE tenant_id = %s"
                             " AND version %% 3 = 0", (tenant,))  # fmt: skip
                conn.execute("DELETE FROM events WHERE tenant_id = %s AND version %% 5 = 0", (tenant,))
            assert_rollups_match(conn, tenant)
        assert count(conn, "SELECT count(*) FROM case_daily WHERE tenant_id = %s", tenant) > 50


def test_a_case_recovered_later_and_a_case_moving_day_leave_their_old_groups(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        tenant = new_tenant(conn)
        first = {"state": "retry_scheduled", "amount_due": 1000, "currency": "usd", "attempts_made": 1,
                 "first_failed_at": "2026-03-01T23:59:00+00:00"}
        write_checkpoint(conn, tenant, "c1", {"in_1": first})
        write_checkpoint(conn, tenant, "c2", {"in_2": {**first, "amount_due": 500}})
        assert totals(conn, tenant) == {("2026-03-01", "retry_scheduled"): (2, 1500, 0, 2)}

        write_checkpoint(conn, tenant, "c1", {"in_1": {**first, "state": "recovered", "attempts_made": 2,
                                                       "recovered_amount": 1000, "recovered_via": "retry",
                                                       "recovered_at": "2026-03-03T10:00:00+00:00"}})
        write_checkpoint(conn, tenant, "c2", {"in_2": {**first, "amount_due": 500,  # its first failure re-dated
                                                       "first_failed_at": "2026-03-02T00:00:00+00:00"}})
        assert totals(conn, tenant) == {("2026-03-01", "recovered"): (1, 1000, 1000, 2),
                                        ("2026-03-02", "retry_scheduled"): (1, 500, 0, 1)}
        credited = conn.execute("SELECT key, cases FROM case_daily WHERE tenant_id = %s AND dimension = 'recovered_by'"
                                " AND cases <> 0 ORDER BY key", (tenant,)).fetchall()
        assert credited == [("open", 1), ("retry", 1)]
        assert_rollups_match(conn, tenant)


def totals(conn: psycopg.Connection[Any], tenant: str) -> dict[tuple[str, str], tuple[int, ...]]:
    rows = conn.execute("SELECT day::text, state, cases, amount_due, recovered_amount, attempts_made FROM case_daily"
                        " WHERE tenant_id = %s AND dimension = 'total' AND cases <> 0", (tenant,)).fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def test_the_writer_reads_its_own_changes_before_it_commits_and_a_rollback_leaves_nothing(database_url: str) -> None:
    case = {"state": "exhausted", "amount_due": 700, "currency": "eur", "first_failed_at": "2026-03-04T08:00:00Z"}
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        tenant = new_tenant(conn)
        conn.commit()
        write_checkpoint(conn, tenant, "c1", {"in_1": case})
        conn.execute("INSERT INTO events (tenant_id, stream_id, version, event_type, payload) VALUES (%s, 'c1', 1,"
                     " 'PaymentFailed', %s)", (tenant, Jsonb({"at": "2026-03-04T08:00:00Z", "amount_due": 700,
                                                             "currency": "eur"})))  # fmt: skip
        args = {"tenant": tenant, "start": None, "end": None, "open": ["classifying"], "lost": ["exhausted"]}
        [total] = [r for r in conn.execute(analytics.SUMMARY_SQL, args).fetchall() if r["dimension"] == "total"]
        assert (total["cases"], total["lost_amount"]) == (1, 700)
        [day] = conn.execute(analytics.DAILY_ACTIVITY_SQL, args).fetchall()
        assert (day["failures"], day["failed_amount"]) == (1, 700)
        conn.rollback()
        for table in ("case_daily", "case_daily_deltas", "activity_daily", "activity_daily_deltas"):
            assert conn.execute(f"SELECT count(*) AS n FROM {table} WHERE tenant_id = %s",
                                (tenant,)).fetchone() == {"n": 0}


def test_two_writers_changing_the_same_groups_in_opposite_orders_never_wait_on_each_other(database_url: str) -> None:
    """Each writer's changes meet the shared rollup rows only as it commits, in one order: updating them as the cases
    changed would make the second writer wait for the first here (then the first for the second: a deadlock)."""
    def case(day: int, state: str) -> dict[str, Any]:
        return {"state": state, "amount_due": 100, "currency": "usd", "first_failed_at": f"2026-03-0{day}T12:00:00Z"}

    with psycopg.connect(database_url, autocommit=True) as setup:
        tenant = new_tenant(setup)
    one, two = (psycopg.connect(database_url) for _ in range(2))
    with one, two:
        for conn in (one, two):
            conn.execute("SET lock_timeout = '2s'")
            conn.commit()
        write_checkpoint(one, tenant, "a", {"in_a": case(1, "retry_scheduled")})
        write_checkpoint(two, tenant, "b", {"in_b": case(2, "exhausted")})
        write_checkpoint(one, tenant, "c", {"in_c": case(2, "exhausted")})  # the group `two` has changed
        write_checkpoint(two, tenant, "d", {"in_d": case(1, "retry_scheduled")})  # the group `one` has changed
        committed = threading.Thread(target=one.commit)
        committed.start()
        two.commit()
        committed.join(10)
        assert totals(one, tenant) == {("2026-03-01", "retry_scheduled"): (2, 200, 0, 0),
                                       ("2026-03-02", "exhausted"): (2, 200, 0, 0)}


@pytest.fixture
def database_before_the_rollups(server_url: str) -> Iterator[str]:
    """A fresh database migrated up to the migration before 0040_case_daily."""
    from yoyo import get_backend, read_migrations

    name = f"payrisk_before_daily_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server_url.rsplit("/", 1)[0] + f"/{name}"
    try:  # dropped even when migrating it fails
        backend = get_backend(yoyo_url(url))
        migrations = read_migrations(str(MIGRATIONS_DIR))
        earlier = migrations.__class__([m for m in migrations if m.id < "0040"], migrations.post_apply)
        with backend.lock():
            backend.apply_migrations(backend.to_apply(earlier))
        backend.connection.close()
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_migration_counts_the_cases_and_events_already_there(database_before_the_rollups: str) -> None:
    from store.migrate import apply_migrations

    rng = random.Random(5)
    with psycopg.connect(database_before_the_rollups, autocommit=True) as conn:
        tenant = new_tenant(conn)
        for i in range(25):
            write_checkpoint(conn, tenant, f"cus_{i}", {f"in_{i}_{n}": a_case(rng, f"in_{i}_{n}") for n in range(2)})
            append_event(conn, tenant, rng)
    assert "0040_case_daily" in apply_migrations(database_before_the_rollups)
    with psycopg.connect(database_before_the_rollups) as conn:
        assert count(conn, "SELECT count(*) FROM case_daily WHERE tenant_id = %s", tenant) > 20
        assert_rollups_match(conn, tenant)


WINDOWS = [{}, {"from": "2026-03-02", "to": "2026-03-04"}, {"from": "2026-03-02T00:01:00Z"},
           {"to": "2026-03-03T23:59:00Z"}, {"from": "2026-03-01T10:00:00Z", "to": "2026-03-01T23:59:30Z"},
           {"from": "2026-03-01T23:00:00-02:00", "to": "2026-03-05T00:00:30+01:00"},
           {"from": "2026-03-02T12:00:00Z", "to": "2026-03-03T12:00:00Z"}]  # fmt: skip


@pytest.mark.parametrize("params", WINDOWS, ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()) or "all")
def test_the_figures_equal_the_queries_before_the_rollups(database_url: str, params: dict[str, str]) -> None:
    rng = random.Random(3)
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        tenant = new_tenant(conn, "oracle")
        for i in range(60):
            write_checkpoint(conn, tenant, f"cus_{i}", {f"in_{i}_{n}": a_case(rng, f"in_{i}_{n}") for n in range(2)})
            append_event(conn, tenant, rng)
        window = a.parse_window(params)
        args = {"tenant": tenant, "start": window.start, "end": window.end, "open": list(a.OPEN_STATES),
                "lost": list(a.LOST_STATES)}

        def read(summary: str, cohort: str, activity: str) -> tuple[Any, Any]:
            return (a.shape_summary(conn.execute(summary, args).fetchall()),
                    a.shape_daily(conn.execute(cohort, args).fetchall(), conn.execute(activity, args).fetchall()))

        now = read(analytics.SUMMARY_SQL, analytics.DAILY_COHORT_SQL, analytics.DAILY_ACTIVITY_SQL)
        assert now == read(ORACLE_SUMMARY, ORACLE_COHORT, ORACLE_ACTIVITY)
        assert now[0]["totals"]  # the window holds cases
