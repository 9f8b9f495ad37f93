"""No double charge (I3) through Adyen and Braintree: the shard is killed between the committed intent and the
provider call, between the call and its result, or the provider charges and its answer is lost (500); the
dialect's ledger shows exactly one charge for the attempt and the case still recovers. Adyen is protected by its
Idempotency-Key (the reconcile sends the same key; Adyen replays the kept answer); Braintree has no keys, so the
adapter looks up the subscription before any new charge (a paid subscription or a transaction since the intent is
the attempt's answer). Real gateway, shards, scheduler, PostgreSQL, the official `Adyen` and `braintree` SDKs
against the simulator's dialects, and a simulated clock."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import ray

from actors.clock import start_sim_clock
from actors.placement import shard_index
from actors.system import ActorSystem
from gateway.app import create_app
from settings import load_settings
from simulator.adyen import AdyenDialect
from simulator.braintree import BraintreeDialect
from simulator.dialect import PaymentBook
from tests.support.servers import ServerThread

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HMAC = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
BT = {"merchant_id": "crash_merchant", "public_key": "crash_public", "private_key": "crash_private"}
CASES = [("before_call", False), ("after_call", False), (None, True)]
IDS = ["killed-between-intent-and-call", "killed-between-call-and-result", "charged-but-answer-lost"]


@pytest.fixture
def stack(database_url: str, redis_url: str, ray_session: None, request: pytest.FixtureRequest
          ) -> Iterator[dict[str, Any]]:
    crash_point, fault = request.param
    now = [T0]
    adyen = AdyenDialect(api_key="adyen_crash_key", merchant_account="PayriskCrash", hmac_key=HMAC,
                         book=PaymentBook("default", seed=3, clock=lambda: now[0]))
    braintree = BraintreeDialect(**BT, book=PaymentBook("default", seed=3, clock=lambda: now[0]))
    clock = start_sim_clock(T0)
    marker = str(Path(tempfile.mkdtemp(prefix="payrisk-crash-")) / "crashed")
    with ServerThread(adyen.app()) as adyen_api, ServerThread(braintree.app()) as bt_api:
        settings = load_settings(
            environ={}, dotenv=None, database_url=database_url, redis_url=redis_url, shards=2,
            adyen_hmac_keys=(HMAC,), adyen_api_key="adyen_crash_key", adyen_merchant_account="PayriskCrash",
            adyen_api_base=f"{adyen_api.url}/v71", braintree_merchant_id=BT["merchant_id"],
            braintree_public_key=BT["public_key"], braintree_private_key=BT["private_key"],
            braintree_api_base=bt_api.url, sweep_interval_seconds=1.0)
        system = ActorSystem(settings, clock="sim", planner="default", crash_point=crash_point, crash_marker=marker)
        system.start(run_loops=False)
        with ServerThread(create_app(settings)) as gateway:
            adyen.webhook_url = f"{gateway.url}/webhooks/adyen"
            braintree.webhook_url = f"{gateway.url}/webhooks/braintree"
            yield {"adyen": adyen, "braintree": braintree, "system": system, "marker": marker, "fault": fault,
                   "crash_point": crash_point, "now": now}
        system.stop()
    ray.kill(clock)


def case_of(system: ActorSystem, customer: str, invoice: str) -> dict[str, Any]:
    shard = system.shards[shard_index("default", customer, len(system.shards))]
    return dict(ray.get(shard.state_of.remote("default", customer))["state"]["cases"].get(invoice) or {})


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"not reached within {timeout}s: {what}")


def fire_due(stack: dict[str, Any], at: datetime) -> None:
    stack["now"][0] = at
    ray.get(ray.get_actor("clock", namespace="payrisk").set.remote(at.isoformat()))
    for _ in range(3):
        try:
            ray.get(stack["system"].scheduler.tick.remote(), timeout=60)
            return
        except ray.exceptions.RayError:
            time.sleep(1)  # a crashed shard is restarting


def retry_through_a_crash(stack: dict[str, Any], customer: str, invoice: str, deliver: Callable[[], Any]) -> None:
    """The first retry (→ crash or lost answer), the reconcile timer, the webhooks; until the case recovers."""
    due = datetime.fromisoformat(case_of(stack["system"], customer, invoice)["next_action"]["at"])
    assert T0 < due < T0 + timedelta(days=8)  # the planner's first retry (Mastercard's advice may defer it)
    fire_due(stack, due)  # the retry: intent → provider call (→ crash?)
    fire_due(stack, due + timedelta(minutes=11))  # the reconcile timer, if anything was left open
    deliver()
    wait_for(lambda: case_of(stack["system"], customer, invoice).get("state") == "recovered", "recovered")


def attempt_status(database_url: str, key: str) -> str | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT status FROM attempts WHERE idempotency_key = %s", (key,)).fetchone()
    return row[0] if row else None


@pytest.mark.parametrize("stack", CASES, ids=IDS, indirect=True)
def test_adyen_a_crash_at_any_step_of_a_retry_never_charges_twice(stack: dict[str, Any], database_url: str) -> None:
    adyen: AdyenDialect = stack["adyen"]
    n = uuid.uuid4().hex[:8]  # the database lives for the session: every run its own shopper, invoice, PSP ids
    adyen.psp_base = 8800000000000000 + int(n, 16) * 1000
    adyen.shopper(f"shopper-{n}", f"PM-{n}", email="ada@example.com", brand="visa")
    adyen.force(f"PM-{n}", "insufficient_funds")
    adyen.renew(f"inv-{n}", f"PM-{n}", {"value": 4900, "currency": "EUR"})
    adyen.deliver()
    wait_for(lambda: case_of(stack["system"], f"adyen:shopper-{n}", f"inv-{n}").get("state") == "retry_scheduled",
             "a retry scheduled")

    adyen.force(f"PM-{n}", "succeed")
    adyen.error_after_charge = stack["fault"]  # Adyen charges, keeps the answer for the key, answers 500
    retry_through_a_crash(stack, f"adyen:shopper-{n}", f"inv-{n}", adyen.deliver)

    key = f"payrisk:default:inv-{n}:1"
    assert [(e.outcome, e.source) for e in adyen.ledger if e.idempotency_key == key] == [("succeeded", "api")]
    assert len(adyen.ledger) == 2 and adyen.double_charges() == {}  # the renewal, and exactly one retry charge
    assert attempt_status(database_url, key) == "succeeded"
    assert Path(stack["marker"]).exists() == (stack["crash_point"] is not None)  # the crash did happen


@pytest.mark.parametrize("stack", CASES, ids=IDS, indirect=True)
def test_braintree_a_crash_at_any_step_of_a_retry_never_charges_twice(stack: dict[str, Any],
                                                                      database_url: str) -> None:
    bt: BraintreeDialect = stack["braintree"]
    n = uuid.uuid4().hex[:8]
    bt.customer(f"cust-{n}", f"tok-{n}", email="grace@example.com", brand="mastercard")
    bt.book.force(f"tok-{n}", "insufficient_funds")
    sub = bt.subscribe(f"sub-{n}", f"tok-{n}", 2900, period_start=T0.date())
    bt.bill(f"sub-{n}")
    bt.deliver()
    customer = f"braintree:cust-{n}"
    wait_for(lambda: case_of(stack["system"], customer, sub.invoice).get("state") == "retry_scheduled",
             "a retry scheduled")

    bt.book.force(f"tok-{n}", "succeed")
    bt.error_after_charge = stack["fault"]  # Braintree charges, then answers 500
    retry_through_a_crash(stack, customer, sub.invoice, bt.deliver)

    assert [(e["outcome"], e["source"]) for e in bt.charges(f"sub-{n}")] == [
        ("declined", "automatic"), ("succeeded", "api")]  # exactly one retry_charge, although Braintree has no keys
    assert bt.book.double_charges() == {}
    posts = [c for c in bt.calls if c[0] == "POST"]
    assert len(posts) == 1  # the reconcile looked (GET) and found the charge; it never charged again
    assert attempt_status(database_url, f"payrisk:default:{sub.invoice}:1") == "succeeded"
    assert Path(stack["marker"]).exists() == (stack["crash_point"] is not None)
