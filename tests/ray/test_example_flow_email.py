"""The example flow (DESIGN.md §5) sends exactly one fallback email, over real SMTP, with the right template and
the hosted invoice link; the trail lists every step with its reason."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import ray

from actors.clock import start_sim_clock
from actors.notifier.catcher import start_catcher
from actors.system import ActorSystem
from gateway.app import create_app
from settings import load_settings
from tests.support.principals import bearer
from tests.support.servers import ServerThread
from tests.support.stripe_events import SECRET, charge_failed, envelope, invoice, pi_failed, sign

#: the operator's API key (set by the gateway fixture): every API call carries it
AUTH: dict[str, str] = {}

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 10:00 in New York, the card country's zone: no quiet hours


@pytest.fixture(scope="module")
def platform(database_url: str, redis_url: str, ray_session: None, admin_key: str) -> Iterator[dict[str, Any]]:
    AUTH.update(bearer(admin_key))
    catcher = start_catcher(0, tempfile.mkdtemp(prefix="payrisk-mail-"))
    settings = load_settings(environ={}, dotenv=None, database_url=database_url, redis_url=redis_url,
                                 smtp_url=catcher.smtp_url, mail_from="billing@example.com",
                             stripe_webhook_secrets=(SECRET,), shards=2)
    clock = start_sim_clock(T0)
    system = ActorSystem(settings, clock="sim", planner="default")
    system.start(run_loops=False)
    with ServerThread(create_app(settings)) as gateway:
        yield {"gateway": gateway.url, "system": system, "catcher": catcher}
    system.stop()
    ray.kill(clock)
    catcher.stop()


def deliver(url: str, body: bytes) -> None:
    assert httpx.post(url + "/webhooks/stripe", content=body, headers={"stripe-signature": sign(body)},
                      timeout=10).status_code == 200


def wait(predicate: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail("condition not reached")


def test_example_flow_sends_exactly_one_fallback_email_with_the_link(platform: dict[str, Any]) -> None:
    gateway, system, catcher = platform["gateway"], platform["system"], platform["catcher"]
    customer = f"cus_{uuid.uuid4().hex[:8]}"
    inv, pi, ch = f"in_{customer}", f"pi_{customer}", f"ch_{customer}"
    deliver(gateway, envelope(f"evt_i_{customer}", "invoice.payment_failed", invoice(inv, customer, pi=pi)))
    deliver(gateway, envelope(f"evt_c_{customer}", "charge.failed", charge_failed(ch, customer, pi=pi)))
    deliver(gateway, envelope(f"evt_p_{customer}", "payment_intent.payment_failed", pi_failed(pi, customer, charge=ch)))
    customer_url = f"{gateway}/api/customers/{customer}"
    wait(lambda: httpx.get(customer_url, headers=AUTH, timeout=5).json().get("status") == "retry_scheduled")

    clock = ray.get_actor("clock", namespace="payrisk")
    ray.get(clock.set.remote((T0 + timedelta(hours=3)).isoformat()))
    ray.get(system.scheduler.tick.remote())  # the retry starts; no provider key here, so it stays in flight
    key = f"payrisk:default:{inv}:1"
    deliver(gateway, envelope(f"evt_i2_{customer}", "invoice.payment_failed", invoice(inv, customer, pi=pi),
                              idempotency_key=key))  # the provider reports our attempt failed
    wait(lambda: httpx.get(customer_url, headers=AUTH, timeout=5).json()["cases"][0]["attempts_made"] == 1)
    for _ in range(3):
        ray.get(system.outbox.tick.remote())

    mails = [m for m in catcher.messages if m["To"] == "ada@example.com" and inv in m.as_string()]
    assert len(mails) == 1
    text = mails[0].as_string()
    assert f"https://invoice.example/{inv}" in text
    assert "failed — we will retry" in mails[0]["Subject"]  # the payment_failed template
    timeline = httpx.get(f"{customer_url}/timeline", headers=AUTH, timeout=5).json()["items"]
    kinds = [item["type"] for item in timeline if item["kind"] == "event"]
    assert kinds[-4:] == ["AttemptFailed", "FailureClassified", "RetryScheduled", "NotificationRequested"]
    scheduled = [i for i in timeline if i["type"] == "RetryScheduled"]
    assert all(i["reason"] for i in scheduled)  # every decision says why

    ray.get(system.outbox.tick.remote())
    assert len([m for m in catcher.messages if inv in m.as_string()]) == 1  # sent once

    # the customer pays: a second email to the same customer reads the first from the send history
    deliver(gateway, envelope(f"evt_paid_{customer}", "invoice.paid", invoice(inv, customer, pi=pi, status="paid")))
    wait(lambda: httpx.get(customer_url, headers=AUTH, timeout=5).json().get("status") == "recovered")
    for _ in range(3):
        ray.get(system.outbox.tick.remote())
    subjects = sorted(m["Subject"] for m in catcher.messages if inv in m.as_string())
    assert len(subjects) == 2 and any("went through" in s for s in subjects)  # the recovered template


def test_custom_metrics_are_visible_on_the_ray_metrics_endpoint(platform: dict[str, Any],
                                                                ray_metrics_url: str) -> None:
    wanted = ("ray_payrisk_failures", "ray_payrisk_deliveries_applied", "ray_payrisk_timer_lag_seconds",
              "ray_payrisk_shard_active_customers",  # the occupancy gauges, set by the shards' own timer
              "ray_payrisk_webhook_to_checkpoint_seconds_bucket")  # stored → applied, per delivery
    deadline = time.monotonic() + 60
    text = ""
    while time.monotonic() < deadline:
        try:
            text = httpx.get(ray_metrics_url, timeout=5).text
        except httpx.HTTPError:
            text = ""
        if all(name in text for name in wanted):
            break
        time.sleep(2)
    missing = [name for name in wanted if name not in text]
    assert not missing, f"not exported: {missing}"
    assert 'category="SOFT_DECLINE"' in text
    assert "cus_" not in "".join(line for line in text.splitlines() if line.startswith("ray_payrisk"))  # no ids
