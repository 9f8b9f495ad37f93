"""Dashboard page loads with a large tenant: N failed invoice cases (default 100,000) seeded straight into a fresh
database (checkpoints + their PaymentFailed and InvoiceRecovered events + deliveries, as the shards write them), then
each page and the analytics API fetched over HTTP through the real gateway (no Ray: pages only read). Prints a table
of wall times, then what the daily rollups (migration 0040) cost each checkpoint write.

    .venv/bin/python -m bench.dashboard_pages [--cases 100000] [--repeat 5] [--writes 2000 (0: no write timing)]
        [--server postgresql://…/postgres]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from typing import Any

import httpx
import psycopg

from gateway.app import create_app
from settings import load_settings
from store.migrate import apply_migrations
from tests.support.principals import make_key
from tests.support.servers import ServerThread

# Each breakdown varies independently of the day and of the others (p: the case's rank within its day), as a real
# tenant's do: two currencies, four states, eight decline reasons in five categories, three segments, two strategy
# versions, two providers, recoveries by retry or by the provider after 1 hour to 10 days.
SEED = """
WITH c AS (SELECT g, g / 90 AS p, 'cus_' || g AS customer, 'in_' || g AS invoice,
                  timestamptz '2026-01-01' + (g %% 90) * interval '1 day' + (g %% 997) * interval '1 minute' AS at,
                  1000 + (g %% 50) * 100 AS amount
           FROM generate_series(1, %(n)s) g),
k AS (SELECT c.*, (ARRAY['usd','usd','usd','eur'])[1 + p %% 4] AS currency,
             (ARRAY['retry_scheduled', 'recovered', 'exhausted', 'awaiting_customer', 'recovered'])
               [1 + (p / 4) %% 5] AS state,
             1 + (p / 20) %% 8 AS r, (ARRAY['smb', 'mid_market', 'enterprise'])[1 + (p / 160) %% 3] AS segment,
             1 + (p / 480) %% 2 AS version, (ARRAY['stripe', 'adyen'])[1 + (p / 7) %% 2] AS provider,
             (ARRAY['retry', 'provider', 'retry'])[1 + (p / 3) %% 3] AS via,
             (1 + (g * 37) %% 240) * interval '1 hour' + (g %% 59) * interval '1 second' AS ttr
      FROM c),
cases AS (SELECT k.*,
                 (ARRAY['insufficient_funds', 'do_not_honor', 'try_again_later', 'processing_error', 'lost_card',
                        'expired_card', 'stolen_card', 'authentication_required'])[r] AS reason,
                 (ARRAY['SOFT_DECLINE', 'SOFT_DECLINE', 'SOFT_DECLINE', 'NETWORK_ERROR', 'HARD_DECLINE',
                        'HARD_DECLINE', 'FRAUD_FLAGGED', 'AUTHENTICATION_REQUIRED'])[r] AS category
          FROM k),
d AS (INSERT INTO deliveries (tenant_id, provider, provider_event_id, event_type, customer_id, body, headers, status,
                              received_at)
      SELECT 'default', 'stripe', 'evt_' || g, 'invoice.payment_failed', customer, '{}'::bytea, '{}', 'applied', at
      FROM cases RETURNING delivery_id, customer_id),
e AS (INSERT INTO events (tenant_id, stream_id, version, event_type, payload, recorded_at)
      SELECT 'default', c.customer, 1, 'PaymentFailed',
             jsonb_build_object('invoice_id', c.invoice, 'delivery_id', d.delivery_id, 'amount_due', c.amount,
                                'currency', c.currency, 'at', c.at), c.at
      FROM cases c JOIN d ON d.customer_id = c.customer
      UNION ALL
      SELECT 'default', c.customer, 2, 'InvoiceRecovered',
             jsonb_build_object('invoice_id', c.invoice, 'amount', c.amount, 'currency', c.currency,
                                'at', c.at + c.ttr), c.at + c.ttr
      FROM cases c WHERE c.state = 'recovered' RETURNING 1)
INSERT INTO checkpoints (tenant_id, stream_id, version, state)
SELECT 'default', customer, CASE WHEN state = 'recovered' THEN 2 ELSE 1 END,
  jsonb_build_object('tenant_id', 'default', 'customer_id', customer, 'email', null,
  'profile', jsonb_build_object('country', 'US'), 'cases', jsonb_build_object(invoice, jsonb_build_object(
    'invoice_id', invoice, 'state', state, 'amount_due', amount, 'currency', currency, 'attempts_made', 1 + g %% 3,
    'max_attempts', 4, 'provider', provider, 'classification', jsonb_build_object('category', category, 'reason',
    reason, 'retryable', category = 'SOFT_DECLINE'), 'strategy', jsonb_build_object('id', 'standard', 'version',
    version, 'segment', segment), 'first_failed_at', at, 'last_failed_at', at,
    'recovered_amount', CASE WHEN state = 'recovered' THEN amount ELSE 0 END,
    'recovered_at', CASE WHEN state = 'recovered' THEN at + ttr END,
    'recovered_via', CASE WHEN state = 'recovered' THEN via END, 'card', '{}'::jsonb, 'emails', '[]'::jsonb,
    'next_action', CASE WHEN state = 'retry_scheduled' THEN jsonb_build_object('kind', 'retry', 'at',
    at + interval '3 days') END, 'explanation', 'seeded')))
FROM cases
"""

PAGES = [
    ("/dashboard", "overview, all time"),
    ("/dashboard?from=2026-03-01&to=2026-03-08", "overview, one week"),
    ("/api/analytics/summary", "API summary, all time (same query)"),
    ("/api/analytics/summary?from=2026-02-01T12:00:00Z&to=2026-03-01T12:00:00Z", "API summary, partial days"),
    ("/api/analytics/daily", "API daily, all time (same queries)"),
    ("/dashboard/cases", "cases, first page (50)"),
    ("/dashboard/cases?category=HARD_DECLINE&amount_min=5000", "cases, filtered"),
    ("/dashboard/customers/cus_4242", "one customer's story"),
    ("/dashboard/incidents", "incidents"),
    ("/dashboard/deliveries", "deliveries (quarantined)"),
    ("/dashboard/strategies?customer=cus_4242", "strategies + explain"),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--writes", type=int, default=2000, help="customers written per half (0: none)")
    parser.add_argument("--keep", action="store_true", help="keep the seeded database (URL printed; no write timing)")
    parser.add_argument("--database", help="time the pages on a database seeded and kept by an earlier run")
    args = parser.parse_args()
    if args.database:  # e.g. two versions of the code on the same rows, in turns, under the same load
        pages(args.database, args)
        return
    name = f"payrisk_bench_dash_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = args.server.rsplit("/", 1)[0] + f"/{name}"
    try:
        run(url, args)
    finally:
        if args.keep:
            print(f"kept: {url}")
        else:
            with psycopg.connect(args.server, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(url: str, args: argparse.Namespace) -> None:
    apply_migrations(url)
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SEED, {"n": args.cases})
        conn.execute("ANALYZE")
    print(f"seeded {args.cases:,} cases in {time.perf_counter() - started:.1f} s")
    pages(url, args)
    if args.writes and 4 * args.writes <= args.cases and not args.keep:  # it leaves the rollups behind
        write_cost(url, args.writes)


def pages(url: str, args: argparse.Namespace) -> None:
    key = make_key(url, "default", ("admin",))
    settings = load_settings(environ={}, dotenv=None, database_url=url, redis_url=args.redis,
                             sweep_interval_seconds=3600)
    with ServerThread(create_app(settings)) as server, httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
        print("| page | median | min | max | bytes |\n|---|---|---|---|---|")
        for path, label in PAGES:
            times, size = [], 0
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                response = client.get(path)
                times.append(time.perf_counter() - t0)
                assert response.status_code == 200, (path, response.status_code, response.text[:300])
                size = len(response.content)
            print(f"| `{path}` ({label}) | {statistics.median(times) * 1000:,.0f} ms | {min(times) * 1000:,.0f} ms"
                  f" | {max(times) * 1000:,.0f} ms | {size:,} |")


# What keeping the daily rollups costs each write: a shard's transaction (one event, one checkpoint whose case changes
# state and attempts), timed with the rollups' triggers on and off, in alternating rounds so that the machine's load
# falls on both alike. Each customer is written once.
ROLLUP_TRIGGERS = {"case_facts": ("case_facts_case_daily_insert", "case_facts_case_daily_update",
                                  "case_facts_case_daily_delete"),
                   "events": ("events_activity_daily_insert", "events_activity_daily_update",
                              "events_activity_daily_delete")}
WRITE = """
WITH e AS (INSERT INTO events (tenant_id, stream_id, version, event_type, payload)
           SELECT 'default', stream_id, version + 1, 'PaymentFailed',
                  jsonb_build_object('invoice_id', %(invoice)s::text, 'amount_due', 1500, 'currency', 'usd',
                                     'at', now())
           FROM checkpoints WHERE tenant_id = 'default' AND stream_id = %(customer)s)
UPDATE checkpoints SET version = version + 1,
       state = jsonb_set(jsonb_set(state, ARRAY['cases', %(invoice)s::text, 'state'], '"exhausted"'),
                         ARRAY['cases', %(invoice)s::text, 'attempts_made'], '4')
WHERE tenant_id = 'default' AND stream_id = %(customer)s
"""


def write_cost(url: str, writes: int, rounds: int = 10) -> None:
    """One customer per transaction, then batches of 20 as a shard writes them (2 × 2 × `writes` customers)."""
    for batch, first in ((1, 1), (20, 2 * writes + 1)):
        times = _timed_writes(url, writes, rounds, batch, first)
        print(f"\ncheckpoint writes, {batch} customer(s) per transaction ({writes:,} customers per half, {rounds}"
              " alternating rounds), time per customer:")
        for on, label in ((True, "rollup triggers on"), (False, "rollup triggers off")):
            print(f"  {label}: median {statistics.median(times[on]) * 1000:.2f} ms,"
                  f" p90 {statistics.quantiles(times[on], n=10)[-1] * 1000:.2f} ms")


def _timed_writes(url: str, writes: int, rounds: int, batch: int, first: int) -> dict[bool, list[float]]:
    times: dict[bool, list[float]] = {True: [], False: []}
    per_round = writes // rounds
    with psycopg.connect(url, autocommit=True) as conn:
        for start in range(0, 2 * writes, batch):
            on = (start // per_round) % 2 == 0
            if start % per_round == 0:
                _set_rollup_triggers(conn, on)
            t0 = time.perf_counter()
            with conn.transaction():
                for n in range(first + start, first + start + batch):
                    conn.execute(WRITE, {"customer": f"cus_{n}", "invoice": f"in_{n}"})
            times[on].append((time.perf_counter() - t0) / batch)
        _set_rollup_triggers(conn, True)
    return times


def _set_rollup_triggers(conn: psycopg.Connection[Any], on: bool) -> None:
    for table, triggers in ROLLUP_TRIGGERS.items():
        for trigger in triggers:
            conn.execute(f"ALTER TABLE {table} {'ENABLE' if on else 'DISABLE'} TRIGGER {trigger}")


if __name__ == "__main__":
    main()
