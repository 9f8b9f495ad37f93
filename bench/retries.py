"""Retries per second through the executor: the customer shards charge the Stripe-compatible simulator with the
real `stripe` SDK (intent committed → provider call → outcome committed), on a simulated clock.

    .venv/bin/python -m bench.retries --invoices 500

Sets up N customers whose invoice failed with insufficient funds (their webhooks go through the gateway), makes
their cards succeed, moves the clock to the retry time and times the scheduler until every case is recovered.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
import uuid
from datetime import timedelta

import psycopg
import ray
import stripe

from actors.clock import start_sim_clock
from actors.system import ActorSystem
from bench import database
from gateway.app import create_app
from settings import load_settings
from simulator.core import SimulatorSettings
from simulator.server import SimulatorServer
from store.migrate import apply_migrations
from tests.support.servers import ServerThread, free_port

SECRET = "whsec_bench_retries"
KEY = "sk_test_bench_retries"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=500)
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", namespace="payrisk",
             _temp_dir=tempfile.mkdtemp(prefix="payrisk-retries-"), log_to_driver=False)
    name = f"payrisk_retries_{uuid.uuid4().hex[:6]}"
    try:
        with database.fresh_database(name) as url:
            apply_migrations(url)
            run(url, args.invoices)
    finally:
        ray.shutdown()


def run(url: str, n: int) -> None:
    port = free_port()
    sim = SimulatorServer(SimulatorSettings(api_keys=(KEY,), webhook_url=f"http://127.0.0.1:{port}/webhooks/stripe",
                                            webhook_secret=SECRET, id_namespace=uuid.uuid4().hex[:6],
                                            auto_deliver=False)).start()
    settings = load_settings(environ={}, dotenv=None, database_url=url, redis_url=database.REDIS_URL,
                             stripe_webhook_secrets=(SECRET,), shards=2, stripe_api_key=KEY, stripe_api_base=sim.url)
    clock = start_sim_clock(sim.sim.now())
    system = ActorSystem(settings, clock="sim", planner="default")
    system.start(run_loops=False)
    client = stripe.StripeClient(KEY, base_addresses={"api": sim.url}, max_network_retries=0)
    try:
        with ServerThread(create_app(settings), port=port):
            cards = []
            for _ in range(n):
                customer = client.v1.customers.create({"email": "bench@example.com"})
                pm = client.v1.payment_methods.attach("pm_card_chargeDeclinedInsufficientFunds",
                                                      {"customer": customer.id})
                client.v1.customers.update(customer.id, {"invoice_settings": {"default_payment_method": pm.id}})
                invoice = client.v1.invoices.create({"customer": customer.id, "amount": 1900,  # type: ignore[typeddict-unknown-key]
                                                     "currency": "usd"})
                with contextlib.suppress(stripe.CardError):  # the first attempt declines, as intended
                    client.v1.invoices.pay(invoice.id)
                cards.append(pm.id)
            sim.flush(everything=True)
            wait(url, "SELECT count(*) FROM events WHERE event_type = 'RetryScheduled'", n)
            for pm in cards:
                sim.sim.force_card(pm, "succeed")
            ray.get(clock.set.remote((sim.sim.now() + timedelta(hours=3, minutes=1)).isoformat()))
            started = time.perf_counter()
            while ray.get(system.scheduler.tick.remote()) > 0:
                pass
            wait(url, "SELECT count(*) FROM events WHERE event_type = 'InvoiceRecovered'", n)
            elapsed = time.perf_counter() - started
        print(f"| retries | seconds | retries/s | double charges |\n|---:|---:|---:|---:|\n"
              f"| {n:,} | {elapsed:.1f} | {n / elapsed:,.0f} | {len(sim.sim.double_charges())} |")
    finally:
        system.stop()
        ray.kill(clock)
        sim.stop()


def wait(url: str, sql: str, expected: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(url) as conn:
            row = conn.execute(sql).fetchone()
        if row and row[0] >= expected:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{sql}: fewer than {expected}")


if __name__ == "__main__":
    main()
