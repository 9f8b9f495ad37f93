"""Adyen and Paddle end to end: the simulator's Adyen dialect sends Standard webhooks signed with the `Adyen`
library, the real gateway verifies them, the customer's home on Ray classifies, retries go back to the dialect's
`/payments` through the `Adyen` SDK with an Idempotency-Key, the outcome comes back, and emails go out over real
SMTP. Paddle customers are only observed. The same customer id under two providers stays two customers."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import psycopg
import pytest
import ray
from paddle_billing.Notifications.PaddleSignature import PaddleSignature

from actors.clock import start_sim_clock
from actors.notifier.catcher import start_catcher
from actors.placement import shard_index
from actors.system import ActorSystem
from gateway.app import create_app
from payrisk.config import load_settings
from simulator.adyen import AdyenDialect
from tests.support.servers import ServerThread

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
HMAC = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
PADDLE_SECRET = "pdl_ntfset_01payrisk_scenarios"


def wait(predicate: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"not reached within {timeout}s: {what}")


@pytest.fixture(scope="module")
def stack(database_url: str, redis_url: str, ray_session: None) -> Iterator[dict[str, Any]]:
    catcher = start_catcher(0, tempfile.mkdtemp(prefix="payrisk-mail-"))
    clock = start_sim_clock(T0)
    adyen = AdyenDialect(api_key="adyen_test_key", merchant_account="PayriskTest", hmac_key=HMAC)
    with ServerThread(adyen.app()) as sim:
        settings = load_settings(environ={}, dotenv=None, database_url=database_url, redis_url=redis_url, shards=2,
                                 adyen_hmac_keys=(HMAC,), adyen_api_key="adyen_test_key",
                                 adyen_merchant_account="PayriskTest", adyen_api_base=f"{sim.url}/v71",
                                 paddle_webhook_secrets=(PADDLE_SECRET,), paddle_tolerance_seconds=60,
                                 sweep_interval_seconds=1.0)
        system = ActorSystem(settings, clock="sim", planner="default",
                             notifier_env={"SMTP_URL": catcher.smtp_url, "MAIL_FROM": "billing@example.com"})
        system.start(run_loops=False)
        with ServerThread(create_app(settings)) as gateway:
            adyen.webhook_url = f"{gateway.url}/webhooks/adyen"
            yield {"adyen": adyen, "system": system, "gateway": gateway.url, "catcher": catcher,
                   "database_url": database_url}
        system.stop()
    ray.kill(clock)
    catcher.stop()


def state(stack: dict[str, Any], customer: str) -> dict[str, Any]:
    system = stack["system"]
    shard = system.shards[shard_index("default", customer, len(system.shards))]
    return dict(ray.get(shard.state_of.remote("default", customer))["state"])


def settle(stack: dict[str, Any], moment: datetime) -> None:
    ray.get(ray.get_actor("clock", namespace="payrisk").set.remote(moment.isoformat()))
    for _ in range(3):
        ray.get(stack["system"].scheduler.tick.remote())
        stack["adyen"].deliver()
        time.sleep(0.5)
    for _ in range(3):
        ray.get(stack["system"].outbox.tick.remote())


def trail(stack: dict[str, Any], customer: str) -> list[str]:
    with psycopg.connect(stack["database_url"]) as conn:
        rows = conn.execute("SELECT event_type FROM events WHERE stream_id = %s ORDER BY version", (customer,))
        return [r[0] for r in rows.fetchall()]


def test_an_adyen_refusal_is_retried_through_adyen_emailed_and_recovered_once(stack: dict[str, Any]) -> None:
    adyen: AdyenDialect = stack["adyen"]
    extra = {"shopperReference": "cust-1", "refusalReasonCode": "12", "refusalReasonRaw": "51 : Insufficient funds",
             "recurring.recurringDetailReference": "PM-1", "recurringProcessingModel": "Subscription",
             "shopperEmail": "ada@example.com"}
    adyen.force("PM-1", "12")  # the balance is still short at the first retry
    adyen.notify("PSP-1", "inv-A1", {"value": 4900, "currency": "EUR"}, False, "Not enough balance", extra, at=T0)
    assert adyen.deliver() == [200]
    case = wait(lambda: state(stack, "adyen:cust-1")["cases"].get("inv-A1", {}).get("state") == "retry_scheduled"
                and state(stack, "adyen:cust-1")["cases"]["inv-A1"], "the refusal classified and a retry scheduled")
    assert case["classification"]["category"] == "SOFT_DECLINE"
    assert case["classification"]["raw_codes"]["decline_code"] == "12"

    settle(stack, T0 + timedelta(hours=3, minutes=1))  # the first retry: refused again → email + final retry
    wait(lambda: len(adyen.ledger) == 1, "one /payments call")
    assert adyen.ledger[0]["idempotency_key"] == "payrisk:default:inv-A1:1" and adyen.ledger[0]["shopper"] == "cust-1"
    wait(lambda: [m for m in stack["catcher"].messages if "inv-A1" in m.as_string()], "a dunning email", 30)

    adyen.force("PM-1", None)  # paid day: the final retry goes through
    settle(stack, T0 + timedelta(days=3, hours=4))
    wait(lambda: state(stack, "adyen:cust-1")["cases"]["inv-A1"]["state"] == "recovered", "recovered")
    settle(stack, T0 + timedelta(days=3, hours=5))  # the AUTHORISATION webhook of our own attempt arrives
    assert [e["outcome"] for e in adyen.ledger] == ["Refused", "Authorised"] and adyen.double_charges() == {}
    with psycopg.connect(stack["database_url"]) as conn:
        rows = conn.execute("SELECT provider, status FROM attempts WHERE customer_id = 'adyen:cust-1'"
                            " ORDER BY attempt_no").fetchall()
    assert rows == [("adyen", "failed"), ("adyen", "succeeded")]
    assert "PaymentFailed" in trail(stack, "adyen:cust-1") and trail(stack, "cust-1") == []  # never the bare id


def test_a_paddle_customer_is_observed_never_charged_and_kept_apart(stack: dict[str, Any]) -> None:
    data = {"id": "txn_1", "status": "past_due", "customer_id": "cust-1", "subscription_id": "sub_1",
            "origin": "subscription_recurring", "currency_code": "USD",
            "details": {"totals": {"grand_total": "2500"}},
            "payments": [{"status": "error", "error_code": "not_enough_balance", "stored_payment_method_id": "spm1",
                          "method_details": {"type": "card", "card": {"type": "visa"}}}]}
    body = orjson.dumps({"event_id": "evt_p1", "event_type": "transaction.payment_failed", "notification_id": "n1",
                         "occurred_at": T0.isoformat(), "data": data})
    ts = int(time.time())
    h1 = PaddleSignature.calculate_hmac(PADDLE_SECRET, f"{ts}:".encode() + body).hexdigest()
    answer = httpx.post(stack["gateway"] + "/webhooks/paddle", content=body,
                        headers={"Paddle-Signature": f"ts={ts};h1={h1}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    wait(lambda: "ShadowDecision" in trail(stack, "paddle:cust-1"), "a shadow decision")
    assert state(stack, "paddle:cust-1")["cases"]["txn_1"]["classification"]["category"] == "SOFT_DECLINE"
    settle(stack, T0 + timedelta(days=5))
    with psycopg.connect(stack["database_url"]) as conn:
        assert conn.execute("SELECT count(*) FROM attempts WHERE customer_id = 'paddle:cust-1'").fetchone() == (0,)
    assert "inv-A1" not in state(stack, "paddle:cust-1")["cases"]  # the Adyen customer cust-1 is another customer
    bad = httpx.post(stack["gateway"] + "/webhooks/paddle", content=body + b" ",
                     headers={"Paddle-Signature": f"ts={ts};h1={h1}"}, timeout=10)
    assert bad.status_code == 400
