"""Dashboard page loads with a large tenant: N failed invoice cases (default 100,000) seeded straight into a fresh
database (checkpoints + their PaymentFailed events + deliveries, as the shards write them), then each page and the
analytics API fetched over HTTP through the real gateway (no Ray: pages only read). Prints a table of wall times.

    .venv/bin/python -m bench.dashboard_pages [--cases 100000] [--repeat 5] [--server postgresql://…/postgres]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import httpx
import psycopg

from gateway.app import create_app
from settings import load_settings
from store.migrate import apply_migrations
from tests.support.principals import make_key
from tests.support.servers import ServerThread

SEED = """
WITH c AS (SELECT g, 'cus_' || g AS customer, 'in_' || g AS invoice,
                  timestamptz '2026-01-01' + (g %% 90) * interval '1 day' + (g %% 997) * interval '1 minute' AS at,
                  (ARRAY['usd','usd','usd','eur'])[1 + g %% 4] AS currency,
                  (ARRAY['retry_scheduled', 'recovered', 'exhausted', 'awaiting_customer', 'recovered'])
                    [1 + g %% 5] AS state,
                  (ARRAY['insufficient_funds','do_not_honor','lost_card','expired_card'])[1 + g %% 4] AS reason,
                  (ARRAY['SOFT_DECLINE','SOFT_DECLINE','HARD_DECLINE','HARD_DECLINE'])[1 + g %% 4] AS category,
                  1000 + (g %% 50) * 100 AS amount
           FROM generate_series(1, %(n)s) g),
d AS (INSERT INTO deliveries (tenant_id, provider, provider_event_id, event_type, customer_id, body, headers, status,
                              received_at)
      SELECT 'default', 'stripe', 'evt_' || g, 'invoice.payment_failed', customer, '{}'::bytea, '{}', 'applied', at
      FROM c RETURNING delivery_id, customer_id),
e AS (INSERT INTO events (tenant_id, stream_id, version, event_type, payload, recorded_at)
      SELECT 'default', c.customer, 1, 'PaymentFailed',
             jsonb_build_object('invoice_id', c.invoice, 'delivery_id', d.delivery_id, 'amount_due', c.amount,
                                'currency', c.currency, 'at', c.at), c.at
      FROM c JOIN d ON d.customer_id = c.customer RETURNING 1)
INSERT INTO checkpoints (tenant_id, stream_id, version, state)
SELECT 'default', customer, 1, jsonb_build_object('tenant_id', 'default', 'customer_id', customer, 'email', null,
  'profile', jsonb_build_object('country', 'US'), 'cases', jsonb_build_object(invoice, jsonb_build_object(
    'invoice_id', invoice, 'state', state, 'amount_due', amount, 'currency', currency, 'attempts_made', 1 + g %% 3,
    'max_attempts', 4, 'classification', jsonb_build_object('category', category, 'reason', reason, 'retryable',
    category = 'SOFT_DECLINE'), 'strategy', jsonb_build_object('id', 'standard', 'version', 1, 'segment', 'smb'),
    'first_failed_at', at, 'last_failed_at', at, 'recovered_amount', CASE WHEN state = 'recovered' THEN amount
    ELSE 0 END, 'recovered_at', CASE WHEN state = 'recovered' THEN at + interval '2 days' END,
    'recovered_via', CASE WHEN state = 'recovered' THEN 'retry' END, 'card', '{}'::jsonb, 'emails', '[]'::jsonb,
    'next_action', CASE WHEN state = 'retry_scheduled' THEN jsonb_build_object('kind', 'retry', 'at',
    at + interval '3 days') END, 'explanation', 'seeded')))
FROM c
"""

PAGES = [
    ("/dashboard", "overview, all time"),
    ("/dashboard?from=2026-03-01&to=2026-03-08", "overview, one week"),
    ("/api/analytics/summary", "API summary, all time (same query)"),
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
    args = parser.parse_args()
    name = f"payrisk_bench_dash_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = args.server.rsplit("/", 1)[0] + f"/{name}"
    try:
        run(url, args)
    finally:
        with psycopg.connect(args.server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(url: str, args: argparse.Namespace) -> None:
    apply_migrations(url)
    key = make_key(url, "default", ("admin",))
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SEED, {"n": args.cases})
        conn.execute("ANALYZE")
    print(f"seeded {args.cases:,} cases in {time.perf_counter() - started:.1f} s")
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


if __name__ == "__main__":
    main()
