"""Adyen, Braintree and Paddle end to end: the simulator's Adyen dialect sends Standard webhooks signed with the
`Adyen` library and its Braintree dialect form-encoded notifications signed with the `braintree` SDK's algorithm;
the real gateway verifies them, the customer's home on Ray classifies, retries go back to the dialect's API through
the official SDK (Adyen `/payments` with an Idempotency-Key; Braintree `Subscription.retry_charge` after a lookup
of the subscription), the outcome comes back, and emails go out over real SMTP. Both dialects decide charges with
the simulator's outcome model and write its ledger. Paddle customers are only observed. The same customer id under
two providers stays two customers."""

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
from settings import load_settings
from simulator.adyen import AdyenDialect
from simulator.braintree import BraintreeDialect
from simulator.dialect import PaymentBook
from tests.support.servers import ServerThread

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
HMAC = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
PADDLE_SECRET = "pdl_ntfset_01payrisk_scenarios"
BT = {"merchant_id": "payrisk_merchant", "public_key": "bt_public_key", "private_key": "bt_private_key"}
#: the dialects' clock follows payrisk's simulated one (set by `settle`)
NOW = [T0]


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
    adyen = AdyenDialect(api_key="adyen_test_key", merchant_account="PayriskTest", hmac_key=HMAC,
                         book=PaymentBook("default", seed=7, clock=lambda: NOW[0]))
    braintree = BraintreeDialect(**BT, book=PaymentBook("default", seed=7, clock=lambda: NOW[0]))
    with ServerThread(adyen.app()) as sim, ServerThread(braintree.app()) as bt_sim:
        settings = load_settings(environ={}, dotenv=None, database_url=database_url, redis_url=redis_url,
                                 smtp_url=catcher.smtp_url, mail_from="billing@example.com", shards=2,
                                 adyen_hmac_keys=(HMAC,), adyen_api_key="adyen_test_key",
                                 adyen_merchant_account="PayriskTest", adyen_api_base=f"{sim.url}/v71",
                                 braintree_merchant_id=BT["merchant_id"], braintree_public_key=BT["public_key"],
                                 braintree_private_key=BT["private_key"], braintree_api_base=bt_sim.url,
                                 paddle_webhook_secrets=(PADDLE_SECRET,), paddle_tolerance_seconds=60,
                                 sweep_interval_seconds=1.0)
        system = ActorSystem(settings, clock="sim", planner="default")
        system.start(run_loops=False)
        with ServerThread(create_app(settings)) as gateway:
            adyen.webhook_url = f"{gateway.url}/webhooks/adyen"
            braintree.webhook_url = f"{gateway.url}/webhooks/braintree"
            yield {"adyen": adyen, "braintree": braintree, "system": system, "gateway": gateway.url, "catcher": catcher,
                   "database_url": database_url}
        system.stop()
    ray.kill(clock)
    catcher.stop()


def state(stack: dict[str, Any], customer: str) -> dict[str, Any]:
    system = stack["system"]
    shard = system.shards[shard_index("default", customer, len(system.shards))]
    return dict(ray.get(shard.state_of.remote("default", customer))["state"])


def settle(stack: dict[str, Any], moment: datetime) -> None:
    NOW[0] = moment
    ray.get(ray.get_actor("clock", namespace="payrisk").set.remote(moment.isoformat()))
    for _ in range(3):
        ray.get(stack["system"].scheduler.tick.remote())
        stack["adyen"].deliver()
        stack["braintree"].deliver()
        time.sleep(0.5)
    for _ in range(3):
        ray.get(stack["system"].outbox.tick.remote())


def trail(stack: dict[str, Any], customer: str) -> list[str]:
    with psycopg.connect(stack["database_url"]) as conn:
        rows = conn.execute("SELECT event_type FROM events WHERE stream_id = %s ORDER BY version", (customer,))
        return [r[0] for r in rows.fetchall()]


def test_an_adyen_refusal_is_retried_through_adyen_emailed_and_recovered_once(stack: dict[str, Any]) -> None:
    adyen: AdyenDialect = stack["adyen"]
    NOW[0] = T0
    adyen.shopper("cust-1", "PM-1", email="ada@example.com", brand="visa", funding="debit")
    adyen.force("PM-1", "insufficient_funds")  # the renewal and the first retry: the balance is short
    assert adyen.renew("inv-A1", "PM-1", {"value": 4900, "currency": "EUR"})["resultCode"] == "Refused"
    assert adyen.deliver() == [200]
    case = wait(lambda: state(stack, "adyen:cust-1")["cases"].get("inv-A1", {}).get("state") == "retry_scheduled"
                and state(stack, "adyen:cust-1")["cases"]["inv-A1"], "the refusal classified and a retry scheduled")
    assert case["classification"]["category"] == "SOFT_DECLINE"
    assert case["classification"]["raw_codes"]["decline_code"] == "12"
    assert case["classification"]["raw_codes"]["network_decline_code"].startswith("51")

    settle(stack, T0 + timedelta(hours=3, minutes=1))  # the first retry: refused again → email + final retry
    wait(lambda: len(adyen.ledger) == 2, "one /payments call after the renewal")
    ours = adyen.ledger[1]
    assert ours.idempotency_key == "payrisk:default:inv-A1:1" and ours.customer == "cust-1" and ours.source == "api"
    wait(lambda: [m for m in stack["catcher"].messages if "inv-A1" in m.as_string()], "a dunning email", 30)

    adyen.force("PM-1", "succeed")  # paid day: the final retry goes through
    settle(stack, T0 + timedelta(days=3, hours=4))
    wait(lambda: state(stack, "adyen:cust-1")["cases"]["inv-A1"]["state"] == "recovered", "recovered")
    settle(stack, T0 + timedelta(days=3, hours=5))  # the AUTHORISATION webhook of our own attempt arrives
    assert [(e.source, e.outcome) for e in adyen.ledger] == [
        ("automatic", "declined"), ("api", "declined"), ("api", "succeeded")]
    assert adyen.double_charges() == {}
    assert [e.attempt for e in adyen.ledger] == [1, 2, 3]  # the model's attempt count, as Stripe's ledger
    with psycopg.connect(stack["database_url"]) as conn:
        rows = conn.execute("SELECT provider, status, origin FROM attempts WHERE customer_id = 'adyen:cust-1'"
                            " ORDER BY attempt_no").fetchall()
    assert rows == [("adyen", "failed", "payrisk"), ("adyen", "succeeded", "payrisk")]
    assert "PaymentFailed" in trail(stack, "adyen:cust-1") and trail(stack, "cust-1") == []  # never the bare id


def test_a_braintree_decline_is_retried_through_braintree_emailed_and_recovered_once(stack: dict[str, Any]) -> None:
    """Braintree's own billing declines; payrisk classifies the processor response, retries with
    `Subscription.retry_charge` (after `Subscription.find`), emails, and recovers; Braintree's own retry in between
    counts in the attempt ledger as the provider's."""
    bt: BraintreeDialect = stack["braintree"]
    T1 = T0 + timedelta(days=10)  # noqa: N806 - the module's clock only moves forward; after the Adyen scenario
    NOW[0] = T1
    bt.customer("cust-1", "tok-1", email="grace@example.com", brand="mastercard", funding="credit")
    bt.book.force("tok-1", "insufficient_funds")
    sub = bt.subscribe("sub-bt-1", "tok-1", 2900, "usd", period_start=T1.date())
    assert bt.bill("sub-bt-1")["status"] == "processor_declined"  # the renewal
    assert bt.deliver() == [200, 200]  # charged_unsuccessfully, went_past_due
    customer = "braintree:cust-1"
    case = wait(lambda: state(stack, customer)["cases"].get(sub.invoice, {}).get("state") == "retry_scheduled"
                and state(stack, customer)["cases"][sub.invoice], "the decline classified and a retry scheduled")
    assert case["classification"]["category"] == "SOFT_DECLINE"
    assert case["classification"]["raw_codes"]["decline_code"] == "2001"
    assert case["classification"]["raw_codes"]["network_decline_code"] == "51"

    NOW[0] = T1 + timedelta(hours=1)  # Braintree's own retry (left on by this merchant): declined again
    bt.bill("sub-bt-1")
    bt.deliver()
    with psycopg.connect(stack["database_url"]) as conn:
        wait(lambda: conn.execute("SELECT count(*) FROM attempts WHERE customer_id = %s AND origin = 'provider'",
                                  (customer,)).fetchone() == (1,), "Braintree's retry in the attempt ledger")

    settle(stack, T1 + timedelta(hours=3, minutes=1))  # payrisk's first retry: declined → email + final retry
    wait(lambda: len(bt.charges("sub-bt-1", "api")) == 1, "one retry_charge")
    wait(lambda: [m for m in stack["catcher"].messages if "grace@example.com" in m.as_string()], "an email", 30)
    assert ("GET", "/merchants/payrisk_merchant/subscriptions/sub-bt-1") in bt.calls  # looked before charging

    bt.book.force("tok-1", "succeed")
    settle(stack, T1 + timedelta(days=3, hours=4))
    wait(lambda: state(stack, customer)["cases"][sub.invoice]["state"] == "recovered", "recovered")
    settle(stack, T1 + timedelta(days=3, hours=5))  # charged_successfully + went_active of our own retry
    assert [(e["source"], e["outcome"]) for e in bt.charges("sub-bt-1")] == [
        ("automatic", "declined"), ("provider_retry", "declined"), ("api", "declined"), ("api", "succeeded")]
    assert bt.book.double_charges() == {} and bt.subscriptions["sub-bt-1"].status == "Active"
    with psycopg.connect(stack["database_url"]) as conn:
        rows = conn.execute("SELECT provider, status, origin FROM attempts WHERE customer_id = %s"
                            " ORDER BY origin, intended_at", (customer,)).fetchall()
    assert rows == [("braintree", "failed", "payrisk"), ("braintree", "succeeded", "payrisk"),
                    ("braintree", "failed", "provider")]
    assert state(stack, "adyen:cust-1")["cases"].get(sub.invoice) is None  # same id at Adyen: another customer


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
