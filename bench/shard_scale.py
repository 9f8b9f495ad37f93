"""Scale of the customer homes: memory per tracked customer, cold activation time, shard restart time.

    .venv/bin/python -m bench.shard_scale --customers 10000 100000

Writes N synthetic checkpoints (one open case each, the shape a real failure leaves) into a fresh database on
DATABASE_URL's server (default: the local PostgreSQL), starts one local Ray with one shard actor, activates every
customer and measures the shard process's RSS and each cold load; then kills the shard and times its restart.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from typing import Any

import orjson
import psycopg
import ray

from actors.domain.case import empty_state, evolve
from actors.placement import NAMESPACE, shard_name
from store.migrate import apply_migrations

SERVER = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def synthetic_state(customer: str) -> dict[str, Any]:
    state = empty_state("default", customer)
    state = evolve(state, "PaymentFailed", {"invoice_id": f"in_{customer}", "at": "2026-03-02T09:00:00+00:00",
                                            "amount_due": 2900, "currency": "usd", "customer_email": "a@b.co",
                                            "payment_intent_id": f"pi_{customer}", "charge_id": f"ch_{customer}",
                                            "classify_at": "2026-03-02T09:02:00+00:00"})
    state = evolve(state, "FailureClassified", {"invoice_id": f"in_{customer}", "card": {"card_brand": "visa"},
                                                "classification": {"category": "SOFT_DECLINE", "retryable": True,
                                                                   "reason": "insufficient_funds"}})
    return evolve(state, "RetryScheduled", {"invoice_id": f"in_{customer}", "action": "retry", "attempt_no": 1,
                                            "at": "2026-03-03T09:00:00+00:00", "max_attempts": 3,
                                            "explanation": "attempt 2 of 4", "retryable": True,
                                            "strategy": {"id": "standard", "version": 1, "segment": "default"}})


def seed(url: str, n: int) -> list[tuple[str, str]]:
    keys = [("default", f"cus_s{i:07d}") for i in range(n)]
    with psycopg.connect(url) as conn, conn.cursor() as cur, cur.copy(
            "COPY checkpoints (tenant_id, stream_id, version, state) FROM STDIN") as copy:
        for tenant, customer in keys:
            copy.write_row((tenant, customer, 3, orjson.dumps(synthetic_state(customer)).decode()))
    return keys


def measure(url: str, n: int) -> dict[str, float]:
    from actors.shard import CustomerShard

    keys = seed(url, n)
    shard = CustomerShard.options(name=shard_name(0), namespace=NAMESPACE).remote(
        0, {"database_url": url, "max_active": n + 1, "clock": "real"})
    base = ray.get(shard.memory.remote())["rss"]
    durations: list[float] = []
    started = time.perf_counter()
    for i in range(0, n, 1000):
        durations += ray.get(shard.activate.remote(keys[i:i + 1000]))
    wall = time.perf_counter() - started
    after = ray.get(shard.memory.remote())
    restart_started = time.perf_counter()
    ray.kill(shard, no_restart=False)
    time.sleep(0.2)
    while True:
        try:
            ray.get(shard.stats.remote(), timeout=30)
            break
        except ray.exceptions.RayError:
            time.sleep(0.1)
    restart = time.perf_counter() - restart_started
    rewarm_started = time.perf_counter()
    for i in range(0, n, 1000):
        ray.get(shard.activate.remote(keys[i:i + 1000]))
    rewarm = time.perf_counter() - rewarm_started
    ray.kill(shard, no_restart=True)
    durations.sort()
    return {"customers": n, "rss_mb": after["rss"] / 2**20, "bytes_per_customer": (after["rss"] - base) / n,
            "activation_p50_ms": statistics.median(durations) * 1000,
            "activation_p99_ms": durations[int(len(durations) * 0.99)] * 1000,
            "activations_per_s": n / wall, "restart_s": restart, "rewarm_all_s": rewarm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", namespace=NAMESPACE,
             _temp_dir=tempfile.mkdtemp(prefix="payrisk-scale-"), log_to_driver=False)
    print("| customers | shard RSS | memory per customer | cold activation p50 / p99 | activations/s "
          "| shard restart | re-activate all |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    try:
        for n in args.customers:
            name = f"payrisk_scale_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(SERVER, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            url = SERVER.rsplit("/", 1)[0] + f"/{name}"
            try:
                apply_migrations(url)
                r = measure(url, n)
                print(f"| {n:,} | {r['rss_mb']:.0f} MB | {r['bytes_per_customer'] / 1024:.1f} KB "
                      f"| {r['activation_p50_ms']:.2f} / {r['activation_p99_ms']:.2f} ms "
                      f"| {r['activations_per_s']:,.0f} | {r['restart_s']:.1f} s | {r['rewarm_all_s']:.1f} s |",
                      flush=True)
            finally:
                with psycopg.connect(SERVER, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
