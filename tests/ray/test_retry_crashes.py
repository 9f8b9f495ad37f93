"""No double charge (I3): the shard is killed at each step of a retry; the simulator's ledger shows exactly one
charge per attempt and the case still recovers. Real gateway, shards, scheduler, PostgreSQL, the real `stripe`
SDK against the Stripe-compatible simulator, and a simulated clock."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import ray
import stripe

from actors.clock import start_sim_clock
from actors.placement import shard_index
from actors.system import ActorSystem
from gateway.app import create_app
from settings import Settings, load_settings
from simulator.core import SimulatorSettings
from simulator.server import SimulatorServer
from tests.support.servers import ServerThread, free_port
from tests.support.stripe_events import SECRET

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
API_KEY = "sk_test_payrisk_crash"


@pytest.fixture
def stack(database_url: str, redis_url: str, ray_session: None, request: pytest.FixtureRequest
          ) -> Iterator[dict[str, Any]]:
    crash_point, fault = request.param
    gateway_port = free_port()
    sim = SimulatorServer(SimulatorSettings(
        api_keys=(API_KEY,), webhook_url=f"http://127.0.0.1:{gateway_port}/webhooks/stripe", webhook_secret=SECRET,
        id_namespace=uuid.uuid4().hex[:8], auto_deliver=False)).start()
    settings: Settings = load_settings(
        environ={}, dotenv=None, database_url=database_url, redis_url=redis_url, stripe_webhook_secrets=(SECRET,),
        shards=2, stripe_api_key=API_KEY, stripe_api_base=sim.url, sweep_interval_seconds=1.0)
    clock = start_sim_clock(T0)
    marker = str(Path(tempfile.mkdtemp(prefix="payrisk-crash-")) / "crashed")
    system = ActorSystem(settings, clock="sim", planner="default", crash_point=crash_point, crash_marker=marker)
    system.start(run_loops=False)
    with ServerThread(create_app(settings), port=gateway_port) as gateway:
        yield {"sim": sim, "system": system, "gateway": gateway.url, "marker": marker, "fault": fault,
               "crash_point": crash_point}
    system.stop()
    ray.kill(clock)
    sim.stop()


def failing_invoice(sim: SimulatorServer) -> tuple[str, str, str]:
    """A customer whose card declines (insufficient funds) on the invoice's first attempt."""
    client = stripe.StripeClient(API_KEY, base_addresses={"api": sim.url}, max_network_retries=0)
    customer = client.v1.customers.create({"email": "ada@example.com"})
    pm = client.v1.payment_methods.attach("pm_card_chargeDeclinedInsufficientFunds", {"customer": customer.id})
    client.v1.customers.update(customer.id, {"invoice_settings": {"default_payment_method": pm.id}})
    invoice = client.v1.invoices.create({"customer": customer.id, "amount": 4900, "currency": "usd"})  # type: ignore[typeddict-unknown-key]
    with pytest.raises(stripe.CardError):
        client.v1.invoices.pay(invoice.id)
    return customer.id, pm.id, invoice.id


def case_of(system: ActorSystem, customer: str, invoice: str) -> dict[str, Any]:
    shard = system.shards[shard_index("default", customer, len(system.shards))]
    return dict(ray.get(shard.state_of.remote("default", customer))["state"]["cases"].get(invoice) or {})


def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail("condition not reached")


def fire_due(system: ActorSystem, at: datetime) -> None:
    ray.get(ray.get_actor("clock", namespace="payrisk").set.remote(at.isoformat()))
    for _ in range(3):
        try:
            ray.get(system.scheduler.tick.remote(), timeout=60)
            return
        except ray.exceptions.RayError:
            time.sleep(1)  # a crashed shard is restarting


@pytest.mark.parametrize("stack", [(None, False), ("before_call", False), ("after_call", False), (None, True)],
                         ids=["no-crash", "killed-between-intent-and-call", "killed-between-call-and-result",
                              "charged-but-answer-lost"], indirect=True)
def test_a_crash_at_any_step_of_a_retry_never_charges_twice(stack: dict[str, Any], database_url: str) -> None:
    sim, system = stack["sim"], stack["system"]
    customer, pm, invoice = failing_invoice(sim)
    sim.flush(everything=True)  # charge.failed, payment_intent.payment_failed, invoice.payment_failed
    wait_for(lambda: case_of(system, customer, invoice).get("state") == "retry_scheduled")

    sim.sim.force_card(pm, "succeed")  # the customer's balance is back
    if stack["fault"]:
        sim.sim.set_faults(api_error_after_charge_rate=1.0)  # the provider charges, then answers 500
    fire_due(system, T0 + timedelta(hours=3))  # the retry: intent → provider call (→ crash?)
    fire_due(system, T0 + timedelta(hours=3, minutes=11))  # the reconcile timer, if anything was left open
    sim.flush(everything=True)
    wait_for(lambda: case_of(system, customer, invoice).get("state") == "recovered")

    key = f"payrisk:default:{invoice}:1"
    ours = [e for e in sim.sim.ledger_entries(invoice) if e.idempotency_key == key]
    assert [e.outcome for e in ours] == ["succeeded"]  # exactly one charge for the attempt
    assert sim.sim.double_charges() == {}
    with psycopg.connect(database_url) as conn:
        status = conn.execute("SELECT status FROM attempts WHERE idempotency_key = %s", (key,)).fetchone()
    assert status is not None and status[0] == "succeeded"
    assert Path(stack["marker"]).exists() == (stack["crash_point"] is not None)  # the crash did happen
