"""Stripe's own retries count in payrisk's network budget: the simulator runs Smart Retries (`source="smart_retry"`
in its ledger), their `invoice.payment_failed` webhooks (attempt_count 2, 3, … without our idempotency key) reach
the real gateway, and the customer's home on Ray writes each as the provider's attempt (`origin = 'provider'`)
with the case's card, once per attempt although Stripe reports a paid attempt in two events."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import ray

from actors.clock import start_sim_clock
from actors.system import ActorSystem
from gateway.app import create_app
from settings import load_settings
from simulator.core import SimulatorSettings
from simulator.server import SimulatorServer
from tests.support.servers import ServerThread, free_port
from tests.support.stripe_events import SECRET

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
API_KEY = "sk_test_payrisk_smart_retries"


@pytest.fixture
def stack(database_url: str, redis_url: str, ray_session: None) -> Iterator[dict[str, Any]]:
    gateway_port = free_port()
    sim = SimulatorServer(SimulatorSettings(
        api_keys=(API_KEY,), webhook_url=f"http://127.0.0.1:{gateway_port}/webhooks/stripe", webhook_secret=SECRET,
        id_namespace=uuid.uuid4().hex[:8], auto_deliver=False, start=T0, customers=1,
        model="always_decline:insufficient_funds", smart_retries=True, smart_retry_days=(1.0, 2.0))).start()
    settings = load_settings(environ={}, dotenv=None, database_url=database_url, redis_url=redis_url,
                             stripe_webhook_secrets=(SECRET,), shards=2, stripe_api_key=API_KEY,
                             stripe_api_base=sim.url, sweep_interval_seconds=1.0)
    clock = start_sim_clock(T0)
    system = ActorSystem(settings, clock="sim", planner="default")
    system.start(run_loops=False)
    with ServerThread(create_app(settings), port=gateway_port):
        yield {"sim": sim, "database_url": database_url}
    system.stop()
    ray.kill(clock)
    sim.stop()


def wait(predicate: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    pytest.fail(f"not reached within {timeout}s: {what}")


def test_stripe_smart_retries_are_written_to_the_attempt_ledger_once_each(stack: dict[str, Any]) -> None:
    sim: SimulatorServer = stack["sim"]
    while len(sim.sim.ledger_entries()) < 2:  # the renewal declines, and Smart Retry 1 a day later
        due = sim.sim.population.next_due()
        assert due is not None
        sim.sim.advance(due)
    first = sim.sim.ledger_entries()[0]
    sim.sim.force_card(first.payment_method, "succeed")
    due = sim.sim.population.next_due()
    assert due is not None
    sim.sim.advance(due)  # Smart Retry 2 pays: invoice.paid and invoice.payment_succeeded, both attempt_count 3
    ledger = sim.sim.ledger_entries(first.invoice)
    assert [(e.source, e.attempt, e.outcome) for e in ledger] == [
        ("automatic", 1, "declined"), ("smart_retry", 2, "declined"), ("smart_retry", 3, "succeeded")]
    invoice, customer = first.invoice, first.customer
    ray.get(ray.get_actor("clock", namespace="payrisk").set.remote(due.isoformat()))
    sim.flush(everything=True)

    def rows() -> list[tuple[Any, ...]]:
        with psycopg.connect(stack["database_url"]) as conn:
            return conn.execute(
                "SELECT attempt_no, status, origin, provider, card_fingerprint IS NOT NULL FROM attempts"
                " WHERE customer_id = %s AND invoice_id = %s ORDER BY attempt_no", (customer, invoice)).fetchall()

    written = wait(lambda: len(rows()) >= 2 and rows(), "the smart retries in the attempt ledger")
    time.sleep(1.0)  # anything more would be a double count
    assert rows() == written == [(2, "failed", "provider", "stripe", True),
                                 (3, "succeeded", "provider", "stripe", True)]
