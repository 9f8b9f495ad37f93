"""End to end at a steady rate: webhook → decision checkpoint latency, and timer lag (due → fired).

    .venv/bin/python -m bench.e2e --rates 100 250 500 --seconds 15

Each rate runs against a fresh database with `payrisk up --no-dashboard` (1 worker, 2 shards) on the local
PostgreSQL and Redis: an open-loop sender posts signed `invoice.payment_failed` webhooks; once every delivery is
applied, `deliveries.applied_at - received_at` gives the webhook → checkpoint latency (the shard marks a delivery
applied in the transaction that writes the checkpoint). Timer lag: N timers due now are written, and the
scheduler's loop (1 s poll) fires them; lag = fired_at - due_at.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench import bodies, database, openloop
from bench.ingest import gateway


def percentiles(url: str, since_id: int) -> tuple[int, float, float, float]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY d), percentile_cont(0.99) WITHIN GROUP"
            " (ORDER BY d), max(d) FROM (SELECT extract(epoch FROM applied_at - received_at) * 1000 AS d"
            " FROM deliveries WHERE delivery_id > %s AND status = 'applied') s", (since_id,)).fetchone()
    assert row is not None
    return int(row[0]), float(row[1] or 0), float(row[2] or 0), float(row[3] or 0)


def by_window(url: str, per_window: int) -> list[tuple[int, float, float]]:
    """Webhook → checkpoint p50 / p99 (ms) of each run of `per_window` consecutive deliveries (in arrival order):
    whether the shards keep up all along, or fall behind as the run goes on."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT (delivery_id - 1) / %s, percentile_cont(0.5) WITHIN GROUP (ORDER BY d), percentile_cont(0.99)"
            " WITHIN GROUP (ORDER BY d) FROM (SELECT delivery_id, extract(epoch FROM applied_at - received_at) * 1000"
            " AS d FROM deliveries WHERE status = 'applied') s GROUP BY 1 ORDER BY 1", (per_window,)).fetchall()
    return [(int(w), float(p50), float(p99)) for w, p50, p99 in rows]


def wait_applied(url: str, since_id: int, expected: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM deliveries WHERE delivery_id > %s AND status = 'applied'",
                               (since_id,)).fetchone()
        if row and row[0] >= expected:
            return
        time.sleep(0.5)


def timer_lag(url: str, n: int) -> tuple[float, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO timers (tenant_id, stream_id, timer_key, due_at, payload)"
                     " SELECT 'default', 'cus_timer_' || g, 'invoice:in_t' || g, now(), jsonb_build_object("
                     "'action', 'classify', 'invoice_id', 'in_t' || g) FROM generate_series(1, %s) g", (n,))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FILTER (WHERE fired_at IS NULL), percentile_cont(0.5) WITHIN GROUP"
                               " (ORDER BY extract(epoch FROM fired_at - due_at)), percentile_cont(0.99) WITHIN"
                               " GROUP (ORDER BY extract(epoch FROM fired_at - due_at)) FROM timers"
                               " WHERE stream_id LIKE 'cus_timer_%%'").fetchone()
        if row and row[0] == 0:
            return float(row[1]) * 1000, float(row[2]) * 1000
        time.sleep(0.5)
    return float("nan"), float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[100, 250, 500])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--timers", type=int, default=2000)
    parser.add_argument("--customers", type=int, default=bodies.CUSTOMERS,
                        help="customers the failures fall on (0: one customer per failure, a renewal run)")
    parser.add_argument("--windows", type=float, default=0,
                        help="also print webhook → checkpoint p50 / p99 per window of this many seconds of sending")
    args = parser.parse_args()
    print(f"failures on {args.customers:,} customers" if args.customers else "one customer per failure")
    print("| rate (req/s) | webhooks | webhook → checkpoint p50 / p99 / max | ack p50 / p99 |")
    print("|---:|---:|---:|---:|")
    lag = (float("nan"), float("nan"))
    for index, rate in enumerate(args.rates):
        name = f"payrisk_e2e_{uuid.uuid4().hex[:6]}"
        with database.fresh_database(name) as url, tempfile.TemporaryDirectory() as tmp:
            lines_path = Path(tmp) / "lines.txt"
            count = int(rate * args.seconds)
            bodies.write(lines_path, f"e2e{index}{uuid.uuid4().hex[:4]}", count, int(datetime.now(UTC).timestamp()),
                         customers=args.customers)
            lines = lines_path.read_bytes().splitlines()
            with gateway(url, 1, Path(tmp) / "data", Path(tmp) / "log.txt") as port:
                result = openloop.run("127.0.0.1", port, lines, rate)
                wait_applied(url, 0, count)
                applied, p50, p99, worst = percentiles(url, 0)
                acks = sorted(o.latency_s * 1000 for o in result.outcomes if o.status == 200)
                ack50, ack99 = acks[len(acks) // 2], acks[int(len(acks) * 0.99)]
                print(f"| {rate:,.0f} | {applied:,} of {count:,} | {p50:.0f} / {p99:.0f} / {worst:.0f} ms "
                      f"| {ack50:.1f} / {ack99:.1f} ms |", flush=True)
                refused = Counter(o.status for o in result.outcomes if o.status != 200)
                if refused:  # not stored, or stored late: a provider sends these again; this sender does not
                    print(f"  ({sum(refused.values())} answered other than 200: {dict(refused)})", flush=True)
                if args.windows:
                    per_window = max(1, int(rate * args.windows))
                    print("  " + "; ".join(f"{w * args.windows:g} s: {p50:.0f} / {p99:.0f} ms"
                                           for w, p50, p99 in by_window(url, per_window)), flush=True)
                if index == 0:
                    lag = timer_lag(url, args.timers)
    print(f"\nTimer lag, {args.timers:,} timers due at once (scheduler polls every 1 s): "
          f"p50 {lag[0]:.0f} ms, p99 {lag[1]:.0f} ms")


if __name__ == "__main__":
    main()
