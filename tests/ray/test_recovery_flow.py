"""The example flow end to end: real gateway over HTTP, real shard and scheduler actors on Ray, real
PostgreSQL, a simulated clock (DESIGN.md §5)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import ray

from actors.clock import start_sim_clock
from actors.system import ActorSystem
from gateway.app import create_app
from settings import Settings, load_settings
from tests.support.principals import bearer
from tests.support.servers import ServerThread
from tests.support.stripe_events import SECRET, charge_failed, envelope, invoice, pi_failed, sign

#: the operator's API key (set by the gateway fixture): every API call carries it
AUTH: dict[str, str] = {}

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def settings(database_url: str, redis_url: str, ray_session: None) -> Settings:
    return load_settings(environ={}, dotenv=None, database_url=database_url, redis_url=redis_url,
                         stripe_webhook_secrets=(SECRET,), shards=2, sweep_interval_seconds=1.0)


@pytest.fixture(scope="module")
def system(settings: Settings) -> Iterator[ActorSystem]:
    clock = start_sim_clock(T0)
    system = ActorSystem(settings, clock="sim", planner="default")
    system.start(run_loops=False)
    yield system
    system.stop()
    ray.kill(clock)


@pytest.fixture(scope="module")
def gateway(settings: Settings, system: ActorSystem, admin_key: str) -> Iterator[str]:
    AUTH.update(bearer(admin_key))
    with ServerThread(create_app(settings)) as server:
        yield server.url


def deliver(url: str, body: bytes) -> None:
    response = httpx.post(url + "/webhooks/stripe", content=body, headers={"stripe-signature": sign(body)},
                          timeout=10)
    assert response.status_code == 200, response.text


def wait_applied(database_url: str, customer: str, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT count(*) FROM deliveries WHERE customer_id = %s AND status = 'applied'",
                               (customer,)).fetchone()
        if row and row[0] >= n:
            return
        time.sleep(0.1)
    pytest.fail(f"{customer}: fewer than {n} deliveries applied after {timeout}s")


def state(system: ActorSystem, customer: str) -> dict[str, Any]:
    from actors.placement import shard_index

    shard = system.shards[shard_index("default", customer, len(system.shards))]
    return dict(ray.get(shard.state_of.remote("default", customer)))


def advance_to(at: datetime) -> None:
    ray.get(ray.get_actor("clock", namespace="payrisk").set.remote(at.isoformat()))


def trail(database_url: str, customer: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT event_type FROM events WHERE stream_id = %s ORDER BY version",
                            (customer,)).fetchall()
    return [r[0] for r in rows]


def test_example_flow_soft_decline_retry_then_fallback_email_and_final_retry(
        gateway: str, system: ActorSystem, database_url: str) -> None:
    customer = f"cus_{uuid.uuid4().hex[:8]}"
    inv = f"in_{customer}"
    # the decline details arrive before the invoice event (reordered delivery)
    deliver(gateway, envelope(f"evt_c_{customer}", "charge.failed", charge_failed(f"ch_{customer}", customer,
                                                                                 pi=f"pi_{customer}")))
    deliver(gateway, envelope(f"evt_p_{customer}", "payment_intent.payment_failed",
                              pi_failed(f"pi_{customer}", customer, charge=f"ch_{customer}")))
    deliver(gateway, envelope(f"evt_i_{customer}", "invoice.payment_failed",
                              invoice(inv, customer, pi=f"pi_{customer}")))
    wait_applied(database_url, customer, 3)
    case = state(system, customer)["state"]["cases"][inv]
    assert case["state"] == "retry_scheduled"
    assert case["classification"]["category"] == "SOFT_DECLINE"
    assert case["next_action"]["at"] == (T0 + timedelta(hours=3)).isoformat()

    advance_to(T0 + timedelta(hours=2, minutes=59))
    ray.get(system.scheduler.tick.remote())
    assert state(system, customer)["state"]["cases"][inv]["state"] == "retry_scheduled"  # not due yet
    advance_to(T0 + timedelta(hours=3))
    assert ray.get(system.scheduler.tick.remote()) >= 1
    assert state(system, customer)["state"]["cases"][inv]["state"] == "retrying"
    key = f"payrisk:default:{inv}:1"
    with psycopg.connect(database_url) as conn:
        intent = conn.execute("SELECT status FROM attempts WHERE idempotency_key = %s", (key,)).fetchone()
    assert intent is not None and intent[0] == "intent"  # committed before any provider call

    # the provider reports our attempt failed (its webhook carries our idempotency key)
    deliver(gateway, envelope(f"evt_i2_{customer}", "invoice.payment_failed", invoice(inv, customer,
                              pi=f"pi_{customer}"), idempotency_key=key))
    wait_applied(database_url, customer, 4)
    case = state(system, customer)["state"]["cases"][inv]
    assert case["state"] == "retry_scheduled" and case["attempts_made"] == 1
    assert case["next_action"]["attempt_no"] == 2
    with psycopg.connect(database_url) as conn:
        emails = conn.execute("SELECT payload->>'template', payload->>'hosted_invoice_url' FROM outbox"
                              " WHERE stream_id = %s AND topic = 'email'", (customer,)).fetchall()
    assert emails == [("payment_failed", f"https://invoice.example/{inv}")]
    assert trail(database_url, customer) == [
        "DeclineDetailsReceived", "DeclineDetailsReceived", "PaymentFailed", "FailureClassified",
        "RetryScheduled", "AttemptStarted", "AttemptFailed", "FailureClassified", "RetryScheduled",
        "NotificationRequested"]


def test_a_payment_after_recovery_never_reopens_and_replay_equals_checkpoint(
        gateway: str, system: ActorSystem, database_url: str) -> None:
    customer = f"cus_{uuid.uuid4().hex[:8]}"
    inv = f"in_{customer}"
    deliver(gateway, envelope(f"evt_f_{customer}", "invoice.payment_failed", invoice(inv, customer, pi=None)))
    deliver(gateway, envelope(f"evt_paid_{customer}", "invoice.paid", invoice(inv, customer, status="paid")))
    deliver(gateway, envelope(f"evt_late_{customer}", "invoice.payment_failed", invoice(inv, customer, pi=None)))
    wait_applied(database_url, customer, 3)
    snapshot = state(system, customer)
    assert snapshot["state"]["cases"][inv]["state"] == "recovered"
    assert trail(database_url, customer)[-1] == "LateEventIgnored"
    from actors.domain.case import empty_state, evolve

    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT event_type, payload FROM events WHERE stream_id = %s ORDER BY version",
                            (customer,)).fetchall()
        cp = conn.execute("SELECT state FROM checkpoints WHERE stream_id = %s", (customer,)).fetchone()
    folded = empty_state("default", customer)
    for event_type, payload in rows:
        folded = evolve(folded, event_type, payload)
    assert cp is not None and folded == cp[0] == snapshot["state"]


def test_concurrent_deliveries_for_one_customer_serialize(gateway: str, system: ActorSystem,
                                                          database_url: str) -> None:
    import asyncio

    customer = f"cus_{uuid.uuid4().hex[:8]}"
    bodies = [envelope(f"evt_{customer}_{i}", "invoice.payment_failed", invoice(f"in_{customer}_{i}", customer,
                                                                               pi=None)) for i in range(12)]

    async def burst() -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            await asyncio.gather(*(client.post(gateway + "/webhooks/stripe", content=b,
                                               headers={"stripe-signature": sign(b)}) for b in bodies))

    asyncio.run(burst())
    wait_applied(database_url, customer, 12)
    with psycopg.connect(database_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM events WHERE stream_id = %s ORDER BY version",
                                               (customer,)).fetchall()]
    assert versions == list(range(1, len(versions) + 1))
    assert len(state(system, customer)["state"]["cases"]) == 12


def test_the_api_shows_the_customer_and_its_timeline_with_reasons(gateway: str, system: ActorSystem,
                                                                  database_url: str) -> None:
    customer = f"cus_{uuid.uuid4().hex[:8]}"
    body = envelope(f"evt_api_{customer}", "invoice.payment_failed",
                    {**invoice(f"in_{customer}", customer, pi=None)})
    deliver(gateway, body)
    wait_applied(database_url, customer, 1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = httpx.get(f"{gateway}/api/customers/{customer}", headers=AUTH, timeout=10)
        if response.status_code == 200:
            break
        time.sleep(0.1)
    assert response.json()["status"] == "classifying"
    timeline = httpx.get(f"{gateway}/api/customers/{customer}/timeline", headers=AUTH, timeout=10).json()["items"]
    assert [i["type"] for i in timeline][:2] == ["invoice.payment_failed", "PaymentFailed"]
    assert httpx.get(f"{gateway}/api/customers/cus_nobody", headers=AUTH, timeout=10).status_code == 404
    assert httpx.get(f"{gateway}/openapi.json", headers=AUTH, timeout=10).json()["openapi"].startswith("3.1")


def test_a_gateway_that_dies_between_commit_and_hand_off_loses_nothing(
        settings: Settings, system: ActorSystem, database_url: str) -> None:
    customer = f"cus_{uuid.uuid4().hex[:8]}"
    body = envelope(f"evt_lost_{customer}", "invoice.payment_failed", invoice(f"in_{customer}", customer, pi=None))
    crashing = settings.replace(fault_drop_handoff=True, sweep_interval_seconds=3600.0)
    with ServerThread(create_app(crashing)) as dying:
        deliver(dying.url, body)
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT status FROM deliveries WHERE customer_id = %s", (customer,)).fetchone()
    assert row is not None and row[0] == "received"  # acknowledged and stored, never handed off

    restarted = settings.replace(sweep_grace_seconds=0.0, sweep_interval_seconds=0.5)
    with ServerThread(create_app(restarted)):
        wait_applied(database_url, customer, 1)
        time.sleep(1.5)  # several more sweeps: the delivery must not be applied twice
    assert trail(database_url, customer).count("PaymentFailed") == 1


def run_cli(database_url: str, *args: str) -> Any:
    import os
    import subprocess
    import sys

    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "payrisk.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_replaying_a_customer_log_reproduces_its_checkpoint(gateway: str, system: ActorSystem,
                                                            database_url: str) -> None:
    customer = f"cus_{uuid.uuid4().hex[:8]}"
    deliver(gateway, envelope(f"evt_r_{customer}", "invoice.payment_failed", invoice(f"in_{customer}", customer)))
    wait_applied(database_url, customer, 1)
    result = run_cli(database_url, "replay", "--customer", customer, "--verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: replay of" in result.stdout
    with psycopg.connect(database_url, autocommit=True) as conn:  # tamper with the checkpoint
        conn.execute("UPDATE checkpoints SET state = jsonb_set(state, '{failures}', '99') WHERE stream_id = %s",
                     (customer,))
    assert run_cli(database_url, "replay", "--customer", customer, "--verify").returncode == 1


def test_a_quarantined_delivery_is_replayed_after_a_fix_and_applied_once(gateway: str, system: ActorSystem,
                                                                          database_url: str) -> None:
    customer = f"cus_{uuid.uuid4().hex[:8]}"
    body = envelope(f"evt_q_{customer}", "invoice.payment_failed", invoice(f"in_{customer}", customer, pi=None))
    with psycopg.connect(database_url, autocommit=True) as conn:  # stored as quarantined by an older parser
        conn.execute("INSERT INTO deliveries (tenant_id, provider, provider_event_id, event_type, body, headers,"
                     " status, status_reason, received_at) VALUES ('default', 'stripe', %s, 'invoice.payment_failed',"
                     " %s, '{}', 'quarantined', 'old parser bug', now() - interval '1 hour')",
                     (f"evt_q_{customer}", body))
    listed = httpx.get(f"{gateway}/api/deliveries?status=quarantined&limit=1000", headers=AUTH,
                       timeout=10).json()["data"]
    assert f"evt_q_{customer}" in {d["provider_event_id"] for d in listed}
    result = run_cli(database_url, "replay", "--quarantined")
    assert "replayed" in result.stdout, result.stderr  # exit 1 only says other quarantined bodies still fail
    wait_applied(database_url, customer, 1)
    assert trail(database_url, customer).count("PaymentFailed") == 1


def test_a_profile_update_changes_the_segment_of_the_next_failure(gateway: str, system: ActorSystem,
                                                                  database_url: str) -> None:
    customer = f"cus_{uuid.uuid4().hex[:8]}"
    url = f"{gateway}/api/customers/{customer}/profile"
    bad = httpx.put(url, json={"mrr": -5}, headers=AUTH, timeout=10)
    assert bad.status_code == 400 and "mrr" in bad.json()["detail"]
    assert httpx.put(url, json={"colour": "red"}, headers=AUTH, timeout=10).status_code == 400
    good = httpx.put(url, json={"country": "DE", "mrr": 500_000, "currency": "eur", "tags": ["enterprise"]},
                     headers=AUTH, timeout=10)
    assert good.status_code == 200, good.text
    snapshot = state(system, customer)["state"]
    assert snapshot["profile"]["country"] == "DE" and snapshot["profile"]["mrr"] == 500_000
    assert trail(database_url, customer) == ["ProfileUpdated"]
    result = run_cli(database_url, "strategies", "explain", "--customer", customer)
    assert result.returncode == 0, result.stderr
    assert "segment" in result.stdout and "strategy" in result.stdout
    missing = run_cli(database_url, "strategies", "explain", "--customer", "cus_nobody")
    assert missing.returncode == 2 and "no customer 'cus_nobody'" in missing.stderr


def test_the_classify_api_answers_through_the_classifier_pool(gateway: str, system: ActorSystem) -> None:
    body = {"provider": "stripe", "declines": [{"decline_code": "insufficient_funds"},
                                               {"decline_code": "insufficient_funds", "network_advice_code": "21"},
                                               {"outcome_reason": "highest_risk_level"}]}
    response = httpx.post(f"{gateway}/api/classify", json=body, headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    categories = [c["category"] for c in response.json()["classifications"]]
    assert categories == ["SOFT_DECLINE", "HARD_DECLINE", "FRAUD_FLAGGED"]
    assert {n for n in system.classifiers.names} == {"classifier-0"}
    bad = httpx.post(f"{gateway}/api/classify", json={"declines": [{"colour": "red"}]}, headers=AUTH, timeout=10)
    assert bad.status_code == 400 and "colour" in bad.json()["detail"]


def test_an_open_incident_pauses_retries_and_they_resume_when_it_clears(
        gateway: str, system: ActorSystem, database_url: str) -> None:
    tenant = f"t_{uuid.uuid4().hex[:6]}"
    customer = f"cus_{uuid.uuid4().hex[:8]}"
    inv, pi, ch = f"in_{customer}", f"pi_{customer}", f"ch_{customer}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, %s)", (tenant, tenant))
    path = f"/webhooks/stripe/{tenant}"
    for body in (envelope(f"evt_c_{customer}", "charge.failed", charge_failed(ch, customer, pi=pi)),
                 envelope(f"evt_p_{customer}", "payment_intent.payment_failed", pi_failed(pi, customer, charge=ch)),
                 envelope(f"evt_i_{customer}", "invoice.payment_failed", invoice(inv, customer, pi=pi))):
        assert httpx.post(gateway + path, content=body, headers={"stripe-signature": sign(body)},
                          timeout=10).status_code == 200
    wait_applied(database_url, customer, 3)
    from actors.placement import shard_index

    shard = system.shards[shard_index(tenant, customer, len(system.shards))]

    def case() -> dict[str, Any]:
        return dict(ray.get(shard.state_of.remote(tenant, customer))["state"]["cases"][inv])

    due = datetime.fromisoformat(case()["next_action"]["at"])
    with psycopg.connect(database_url, autocommit=True) as conn:  # what the monitor records for a burst
        conn.execute("INSERT INTO events (tenant_id, stream_id, version, event_type, payload) VALUES"
                     " (%s, 'monitor:stripe', 1, 'IncidentOpened', %s)",
                     (tenant, '{"incident_id": "inc-1", "provider": "stripe", "categories": ["CONFIG_ERROR"]}'))
    time.sleep(5.5)  # shards cache a tenant's incidents for 5 s
    advance_to(due)
    ray.get(system.scheduler.tick.remote())
    held = case()
    assert held["state"] == "retry_scheduled" and "incident" in held["explanation"]
    resume = datetime.fromisoformat(held["next_action"]["at"])
    assert resume >= due + timedelta(hours=1)

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO events (tenant_id, stream_id, version, event_type, payload) VALUES"
                     " (%s, 'monitor:stripe', 2, 'IncidentResolved', %s)", (tenant, '{"incident_id": "inc-1"}'))
    time.sleep(5.5)  # shards cache a tenant's incidents for 5 s
    advance_to(resume)
    ray.get(system.scheduler.tick.remote())
    assert case()["state"] == "retrying"  # resumed: the attempt started
    assert trail(database_url, customer).count("RetryPaused") == 1
