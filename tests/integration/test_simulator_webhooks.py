"""Population, renewals and webhook delivery to a real local receiver; signatures checked with the `stripe` SDK."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.core import SimulatorSettings
from simulator.faults import Faults
from simulator.server import SimulatorServer
from simulator.webhooks import BACKOFF_SECONDS
from tests.support.servers import ServerThread, free_port

SECRET = "whsec_simulator_test_secret"


@dataclass
class Receiver:
    """A webhook endpoint that records raw deliveries; `status` is what it answers."""

    url: str = ""
    status: int = 200
    deliveries: list[tuple[bytes, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.deliveries.append((body, request.headers.get("stripe-signature", "")))
        return Response(status_code=self.status)

    def events(self) -> list[stripe.Event]:
        """Every delivery verified and parsed by the SDK (raises on a bad signature)."""
        with self.lock:
            return [stripe.Webhook.construct_event(body.decode(), sig, SECRET) for body, sig in self.deliveries]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    app = Starlette(routes=[Route("/webhooks/stripe", rec.receive, methods=["POST"])])
    with ServerThread(app) as server:
        rec.url = f"{server.url}/webhooks/stripe"
        yield rec


def simulator(receiver: Receiver, url: str | None = None, **settings: object) -> SimulatorServer:
    receiver.deliveries.clear()
    receiver.status = 200
    base = SimulatorSettings(
        seed=5, customers=20, webhook_url=url or receiver.url, webhook_secret=SECRET, auto_deliver=False
    )
    return SimulatorServer(base.model_copy(update=settings))


def run_a_month(server: SimulatorServer) -> None:
    sim = server.sim
    sim.advance(sim.now() + timedelta(days=31))
    server.flush()


@pytest.mark.parametrize("api_version", ["2024-06-20", "2026-10-28.endive"])
def test_renewals_emit_signed_webhooks_for_every_outcome(receiver: Receiver, api_version: str) -> None:
    with simulator(receiver, api_version=api_version, model="always_decline:insufficient_funds") as server:
        run_a_month(server)
        events = receiver.events()
        assert server.sim.double_charges() == {}
    assert len(events) == len(server.sim.events) > 0
    types = {e.type for e in events}
    assert {
        "charge.failed",
        "payment_intent.payment_failed",
        "invoice.payment_failed",
        "customer.subscription.updated",
    } <= types
    assert all(e.api_version == api_version for e in events)


def test_the_legacy_invoice_shape_has_top_level_charge_and_subscription(receiver: Receiver) -> None:
    with simulator(receiver, api_version="2024-06-20", model="always_decline:do_not_honor") as server:
        run_a_month(server)
    failed = next(e for e in receiver.events() if e.type == "invoice.payment_failed")
    invoice = failed.data.object
    assert invoice["subscription"].startswith("sub_") and invoice["charge"].startswith("ch_")
    assert invoice["payment_intent"].startswith("pi_") and invoice["paid"] is False
    assert "parent" not in invoice and invoice["next_payment_attempt"] is None
    charge = next(e for e in receiver.events() if e.type == "charge.failed").data.object
    assert charge["invoice"].startswith("in_")


def test_the_basil_invoice_shape_nests_subscription_and_payments(receiver: Receiver) -> None:
    with simulator(receiver, api_version="2025-03-31.basil", model="always_succeed") as server:
        run_a_month(server)
        paid = next(e for e in receiver.events() if e.type == "invoice.paid")
        invoice = paid.data.object
        client = stripe.StripeClient(server.api_key, base_addresses={"api": server.url}, max_network_retries=0)
        read = client.v1.invoices.retrieve(invoice["id"], params={"expand": ["payments"]})
    assert invoice["parent"]["subscription_details"]["subscription"].startswith("sub_")
    assert "payments" not in invoice  # an includable field: webhooks never carry it
    assert read["payments"]["data"][0]["payment"]["payment_intent"].startswith("pi_")
    assert "charge" not in invoice and "subscription" not in invoice and "paid" not in invoice
    assert {"invoice.paid", "invoice.payment_succeeded"} <= {e.type for e in receiver.events()}


def test_smart_retries_fill_next_payment_attempt_and_retry_on_the_clock(receiver: Receiver) -> None:
    with simulator(receiver, customers=3, model="always_decline:insufficient_funds", smart_retries=True) as server:
        run_a_month(server)
    failures = [e.data.object for e in receiver.events() if e.type == "invoice.payment_failed"]
    assert any(inv["next_payment_attempt"] is not None for inv in failures)
    assert {e.source for e in server.sim.ledger_entries()} == {"automatic", "smart_retry"}


def test_duplicate_deliveries_repeat_the_same_event(receiver: Receiver) -> None:
    with simulator(receiver, customers=3, faults=Faults(webhook_duplicate_rate=1.0)) as server:
        run_a_month(server)
    ids = [e.id for e in receiver.events()]
    assert len(ids) == 2 * len(set(ids)) == 2 * len(server.sim.events)


def test_reordering_shuffles_deliveries_but_loses_none(receiver: Receiver) -> None:
    with simulator(receiver, faults=Faults(webhook_reorder_window=8)) as server:
        run_a_month(server)
    delivered = [e.id for e in receiver.events()]
    emitted = [e["id"] for e in server.sim.events]
    assert delivered != emitted and sorted(delivered) == sorted(emitted)


def test_delayed_deliveries_wait_for_the_clock(receiver: Receiver) -> None:
    with simulator(
        receiver, customers=1, faults=Faults(webhook_delay_min_seconds=600, webhook_delay_max_seconds=900)
    ) as server:
        sim = server.sim
        renewal = sim.population.next_due()
        assert renewal is not None
        sim.advance(renewal)
        assert server.flush() == 0 and len(sim.outbox.pending()) == len(sim.events) > 0
        sim.advance(renewal + timedelta(seconds=900))
        assert server.flush() == len(sim.events)
    assert [e.id for e in receiver.events()] == [e["id"] for e in server.sim.events]


def test_an_outage_queues_deliveries_and_backs_off_until_the_endpoint_is_back(receiver: Receiver) -> None:
    with simulator(receiver, customers=2, faults=Faults(webhook_outage=True)) as server:
        sim = server.sim
        sim.advance(sim.now() + timedelta(days=31))
        assert server.flush() == 0 and receiver.deliveries == []
        sim.set_faults(webhook_outage=False)
        assert server.flush() == 0  # backing off: nothing is due yet
        sim.advance(sim.now() + timedelta(seconds=BACKOFF_SECONDS[0]))
        assert server.flush() == len(sim.events)
    assert {e.id for e in receiver.events()} == {e["id"] for e in server.sim.events}


def test_an_unreachable_or_failing_endpoint_is_retried(receiver: Receiver) -> None:
    with simulator(receiver, url=f"http://127.0.0.1:{free_port()}/nobody", customers=1) as server:
        sim = server.sim
        sim.advance(sim.now() + timedelta(days=31))
        assert server.flush() == 0
        assert all(d.status is None and d.error for d in sim.outbox.deliveries)
        assert all(p.attempts == 1 for p in sim.outbox.pending())


def test_a_non_2xx_answer_is_retried_later(receiver: Receiver) -> None:
    with simulator(receiver, customers=1) as server:
        receiver.status = 500
        sim = server.sim
        sim.advance(sim.now() + timedelta(days=31))
        assert server.flush() == 0
        receiver.status = 200
        sim.advance(sim.now() + timedelta(seconds=BACKOFF_SECONDS[0]))
        assert server.flush() == len(sim.events)


def test_the_same_seed_gives_the_same_month(receiver: Receiver) -> None:
    runs = []
    for _ in range(2):
        with simulator(receiver, customers=40) as server:
            server.sim.advance(server.sim.now() + timedelta(days=45))
            runs.append([(e.invoice, e.outcome, e.decline_code) for e in server.sim.ledger_entries()])
    assert runs[0] == runs[1] and len(runs[0]) >= 40


def test_a_running_server_delivers_by_itself(receiver: Receiver) -> None:
    with simulator(receiver, customers=3, auto_deliver=True, deliver_interval=0.05) as server:
        server.sim.advance(server.sim.now() + timedelta(days=31))
        deadline = time.monotonic() + 20
        while len(receiver.deliveries) < len(server.sim.events) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [e.id for e in receiver.events()] == [e["id"] for e in server.sim.events]
