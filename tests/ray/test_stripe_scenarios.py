"""Stripe as it really sends it, end to end: the simulator (driven through the official SDK) renders webhooks in an
endpoint's API version, the real gateway verifies and stores them, the customer's home on Ray decides, the
classifier pool reads the Stripe API where a delivery lacks codes, retries go back to the simulator through the
SDK, and emails go out over real SMTP. Every scenario runs for a 2017, a 2020 and a current API version.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import ray
import stripe

from actors.clock import start_sim_clock
from actors.notifier.catcher import CatcherHandle, start_catcher
from actors.placement import shard_index
from actors.system import ActorSystem
from gateway.app import create_app
from settings import load_settings
from simulator.core import SimulatorSettings
from simulator.server import SimulatorServer
from tests.support.servers import ServerThread

SECRET = "whsec_stripe_scenarios"
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 10:00 in New York: no quiet hours for the test cards' country
VERSIONS = ["2017-08-15", "2020-08-27", "2026-06-24.dahlia"]
PRICE = {"currency": "usd", "product": "prod_sim", "recurring": {"interval": "month"}}
FAILURES = ["invoice.payment_failed", "invoice.paid", "invoice.payment_succeeded", "charge.failed",
            "payment_intent.payment_failed", "customer.subscription.updated"]


@dataclass
class Platform:
    gateway: str
    sim: SimulatorServer
    system: ActorSystem
    catcher: CatcherHandle
    database_url: str

    @property
    def client(self) -> stripe.StripeClient:
        return stripe.StripeClient(self.sim.api_key, base_addresses={"api": self.sim.url}, max_network_retries=0)

    def endpoint(self, version: str, events: list[str] | None = None, **options: Any) -> None:
        self.sim.sim.update_webhook_endpoint(api_version=version, enabled_events=tuple(events or ["*"]), **options)

    def deliver(self) -> None:
        """Send what the simulator queued and wait until the platform has applied all of it."""
        self.sim.flush(everything=True)
        wait(lambda: not self._pending(), "every delivery applied", timeout=60, detail=self._pending)

    def _pending(self) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute("SELECT delivery_id, event_type, status, customer_id FROM deliveries"
                                " WHERE status IN ('received', 'dispatched')").fetchall()

    def state(self, customer: str, tenant: str = "default") -> dict[str, Any]:
        shard = self.system.shards[shard_index(tenant, customer, len(self.system.shards))]
        return dict(ray.get(shard.state_of.remote(tenant, customer))["state"])

    def case(self, customer: str, invoice: str, tenant: str = "default") -> dict[str, Any]:
        return dict(self.state(customer, tenant)["cases"][invoice])

    def trail(self, customer: str) -> list[tuple[str, dict[str, Any]]]:
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute("SELECT event_type, payload FROM events WHERE stream_id = %s ORDER BY version",
                                (customer,)).fetchall()
        return [(r[0], r[1]) for r in rows]

    def at(self, moment: datetime) -> None:
        """Move the platform's clock and the simulator's to `moment`, then fire what is due and send the mail."""
        ray.get(ray.get_actor("clock", namespace="payrisk").set.remote(moment.isoformat()))
        if moment > self.sim.sim.now():
            self.sim.sim.advance(moment)
        for _ in range(3):
            ray.get(self.system.scheduler.tick.remote())
            self.deliver()
        for _ in range(3):
            ray.get(self.system.outbox.tick.remote())

    def mails(self, invoice: str) -> list[str]:
        return [m["Subject"] or "" for m in self.catcher.messages if invoice in m.as_string()]

    def charges(self, invoice: str) -> list[Any]:
        return [e for e in self.sim.sim.ledger_entries(invoice)]


def wait(predicate: Callable[[], Any], what: str, timeout: float = 30.0,
         detail: Callable[[], Any] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"not reached within {timeout}s: {what}" + (f"; {detail()}" if detail else ""))


@pytest.fixture(scope="module")
def platform(database_url: str, redis_url: str, ray_session: None) -> Iterator[Platform]:
    catcher = start_catcher(0, tempfile.mkdtemp(prefix="payrisk-mail-"))
    clock = start_sim_clock(T0)
    # a card without a forced outcome (pm_card_visa, tok_visa) always succeeds, as in Stripe's test mode
    sim_settings = SimulatorSettings(seed=5, id_namespace=uuid.uuid4().hex, auto_deliver=False, start=T0,
                                     webhook_secret=SECRET, model="always_succeed")
    with SimulatorServer(sim_settings) as sim:
        settings = load_settings(environ={}, dotenv=None, database_url=database_url, redis_url=redis_url,
                                 smtp_url=catcher.smtp_url, mail_from="billing@example.com",
                                 stripe_webhook_secrets=(SECRET,), shards=2, stripe_api_key=sim.api_key,
                                 stripe_api_base=sim.url, sweep_interval_seconds=1.0)
        system = ActorSystem(settings, clock="sim")
        system.start(run_loops=False)
        with ServerThread(create_app(settings)) as gateway:
            sim.sim.update_webhook_endpoint(url=f"{gateway.url}/webhooks/stripe")
            yield Platform(gateway.url, sim, system, catcher, database_url)
        system.stop()
    ray.kill(clock)
    catcher.stop()


def failing_customer(p: Platform, *, card: str = "pm_card_chargeDeclinedInsufficientFunds", amount: int = 2500,
                     email: str | None = None, sources: bool = False) -> dict[str, str]:
    """A customer whose card declines, and a subscription whose first invoice therefore failed. With `sources`,
    the card is a legacy card source (`card_…`, the customer's `default_source`), as in 2017-era integrations."""
    c = p.client
    customer = c.v1.customers.create(params={"email": email or f"{uuid.uuid4().hex[:8]}@example.com"})
    if sources:
        source = c.v1.customers.payment_sources.create(customer.id, params={"source": card.replace("pm_card_", "tok_")})
        c.v1.customers.update(customer.id, params={"default_source": source.id})
        pm = source
    else:
        pm = c.v1.payment_methods.attach(card, params={"customer": customer.id})
        c.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": pm.id}})
    sub = c.v1.subscriptions.create(params={"customer": customer.id,  # type: ignore[typeddict-item]
                                            "items": [{"price_data": {**PRICE, "unit_amount": amount}}]})
    return {"customer": customer.id, "pm": pm.id, "sub": sub.id, "invoice": str(sub.latest_invoice)}


def names(trail: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in trail]


def classified(trail: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    return next(p for n, p in trail if n == "FailureClassified")


# ------------------------------------------------------------------------------------------------- scenarios


@pytest.mark.parametrize("version", VERSIONS)
def test_a_soft_decline_schedules_a_retry_and_sends_no_action_email(platform: Platform, version: str) -> None:
    platform.endpoint(version)
    ids = failing_customer(platform)
    platform.deliver()
    case = wait(lambda: (c := platform.case(ids["customer"], ids["invoice"]))["state"] != "classifying" and c,
                "classified without the timer")
    assert case["state"] == "retry_scheduled"
    assert case["classification"]["category"] == "SOFT_DECLINE"
    assert case["classification"]["reason"] == "insufficient_funds"
    platform.at(platform.sim.sim.now())
    assert not [s for s in platform.mails(ids["invoice"]) if "action" in s.lower() or "update" in s.lower()]


@pytest.mark.parametrize("version", VERSIONS)
def test_an_sca_failure_is_read_through_the_api_awaits_the_customer_and_is_never_retried(
        platform: Platform, version: str) -> None:
    # the endpoint hears only the invoice: the codes exist only behind the API
    platform.endpoint(version, ["invoice.payment_failed", "invoice.paid"])
    ids = failing_customer(platform, card="pm_card_authenticationRequired")
    platform.deliver()
    case = wait(lambda: (c := platform.case(ids["customer"], ids["invoice"]))["state"] != "classifying" and c,
                "classified from the API read")
    assert case["classification"]["category"] == "AUTHENTICATION_REQUIRED"
    assert case["state"] == "awaiting_customer"
    trail = platform.trail(ids["customer"])
    assert names(trail).count("DetailsRequested") == 1 and "DetailsFetched" in names(trail)
    assert classified(trail)["details_from"][0]["source"] == "api"
    before = len(platform.charges(ids["invoice"]))
    start = platform.sim.sim.now()
    platform.at(start + timedelta(hours=1))
    mails = platform.mails(ids["invoice"])
    assert len(mails) == 1 and mails[0].startswith("Action needed"), mails
    (message,) = [m for m in platform.catcher.messages if ids["invoice"] in m.as_string()]
    hosted = f"https://invoice.stripe.sim/i/{ids['invoice']}"
    body = message.get_body(preferencelist=("plain",))
    assert body is not None and hosted in body.get_content()  # the hosted invoice link: where to authenticate
    for day in (1, 3, 7, 20):  # past the deadline: a final notice, but never a charge without the customer
        platform.at(start + timedelta(days=day))
    assert len(platform.charges(ids["invoice"])) == before
    assert [m.split(":")[0] for m in platform.mails(ids["invoice"])] == ["Action needed", "Final notice"]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_card_update_without_previous_attributes_retries_promptly_and_recovers_once(
        platform: Platform, version: str) -> None:
    platform.endpoint(version, [*FAILURES, "customer.updated"], omit_previous_attributes=True)
    ids = failing_customer(platform, sources=version < "2018")
    platform.deliver()
    wait(lambda: platform.case(ids["customer"], ids["invoice"])["state"] == "retry_scheduled", "retry scheduled")
    scheduled_at = datetime.fromisoformat(platform.case(ids["customer"], ids["invoice"])["next_action"]["at"])
    c = platform.client
    if version < "2018":  # the sources API: a new card, made the default source
        card = c.v1.customers.payment_sources.create(ids["customer"], params={"source": "tok_visa"})
        c.v1.customers.update(ids["customer"], params={"default_source": card.id})
        new = card.id
    else:
        pm = c.v1.payment_methods.attach("pm_card_visa", params={"customer": ids["customer"]})
        c.v1.customers.update(ids["customer"], params={"invoice_settings": {"default_payment_method": pm.id}})
        new = pm.id
    platform.deliver()
    case = platform.case(ids["customer"], ids["invoice"])
    assert case["retry_payment_method"] == new
    due = datetime.fromisoformat(case["next_action"]["at"])
    assert due < scheduled_at and due - platform.sim.sim.now() <= timedelta(minutes=2)  # prompt, not a day later
    platform.at(due + timedelta(seconds=1))
    case = wait(lambda: (c := platform.case(ids["customer"], ids["invoice"]))["state"] == "recovered" and c,
                "recovered on the new card", detail=lambda: (platform.case(ids["customer"], ids["invoice"]),
                                                             names(platform.trail(ids["customer"]))))
    assert case["recovered_credit"] == "card_update"
    succeeded = [e for e in platform.charges(ids["invoice"]) if e.outcome == "succeeded"]
    assert len(succeeded) == 1
    platform.at(platform.sim.sim.now() + timedelta(days=5))
    assert len([e for e in platform.charges(ids["invoice"]) if e.outcome == "succeeded"]) == 1
    assert not [s for s in platform.mails(ids["invoice"]) if "final" in s.lower()]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_charge_declined_with_no_invoice_failure_webhook_opens_no_case(platform: Platform, version: str) -> None:
    platform.endpoint(version, ["charge.failed", "payment_intent.payment_failed"])
    ids = failing_customer(platform)
    platform.deliver()
    assert platform.state(ids["customer"])["cases"] == {}


def test_without_an_api_key_the_current_pair_is_joined_by_inference_within_seconds(platform: Platform) -> None:
    platform.endpoint("2026-06-24.dahlia", ["invoice.payment_failed", "charge.failed"])
    ray.get([s.configure.remote({"stripe_api_key": None}) for s in platform.system.shards])
    try:
        ids = failing_customer(platform)
        platform.deliver()
        case = wait(lambda: (c := platform.case(ids["customer"], ids["invoice"]))["state"] != "classifying" and c,
                    "classified by the inferred join", timeout=10)
    finally:
        ray.get([s.configure.remote({"stripe_api_key": platform.sim.api_key}) for s in platform.system.shards])
    assert case["classification"]["reason"] == "insufficient_funds"
    trail = platform.trail(ids["customer"])
    assert "DeclineJoined" in names(trail) and "DetailsRequested" not in names(trail)
    assert classified(trail)["details_from"][0]["joined"] == "inferred"


def test_retries_fired_in_one_pass_record_a_shards_answers_in_one_transaction(platform: Platform) -> None:
    """Six customers' retries due together, fired by one scheduler pass: each charged once, and the provider's
    answers of one shard's customers recorded in one transaction (one `xmin` for their `AttemptFailed` events),
    not one transaction each."""
    platform.endpoint("2026-06-24.dahlia", FAILURES)
    customers = [failing_customer(platform) for _ in range(6)]
    platform.deliver()
    for ids in customers:
        wait(lambda ids=ids: platform.case(ids["customer"], ids["invoice"])["state"] == "retry_scheduled",
             "retry scheduled")
    due = max(datetime.fromisoformat(platform.case(i["customer"], i["invoice"])["next_action"]["at"])
              for i in customers) + timedelta(seconds=1)
    ray.get(ray.get_actor("clock", namespace="payrisk").set.remote(due.isoformat()))
    platform.sim.sim.advance(due)
    assert ray.get(platform.system.scheduler.tick.remote()) >= len(customers)  # one pass fires every retry
    ids = [i["customer"] for i in customers]
    with psycopg.connect(platform.database_url) as conn:
        rows = conn.execute("SELECT stream_id, xmin::text FROM events WHERE event_type = 'AttemptFailed'"
                            " AND stream_id = ANY(%s)", (ids,)).fetchall()
    assert sorted(r[0] for r in rows) == sorted(ids)  # every answer recorded, once
    by_shard: dict[int, set[str]] = {}
    for customer, xmin in rows:
        by_shard.setdefault(shard_index("default", customer, len(platform.system.shards)), set()).add(xmin)
    assert all(len(xmins) == 1 for xmins in by_shard.values()), by_shard
    for i in customers:
        assert len([e for e in platform.charges(i["invoice"]) if e.source == "api"]) == 1
    platform.deliver()


def renewing_customer(p: Platform, amount: int) -> dict[str, str]:
    """A customer who has paid for three months, then whose card starts to decline at the next renewal."""
    c = p.client
    customer = c.v1.customers.create(params={"email": f"{uuid.uuid4().hex[:8]}@example.com"})
    pm = c.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    c.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": pm.id}})
    sub = c.v1.subscriptions.create(params={"customer": customer.id,  # type: ignore[typeddict-item]
                                            "items": [{"price_data": {**PRICE, "unit_amount": amount}}]})
    return {"customer": customer.id, "pm": pm.id, "sub": sub.id}


def test_customers_with_real_tenure_reach_the_value_segments(platform: Platform) -> None:
    platform.endpoint("2026-06-24.dahlia", FAILURES)
    customers = {segment: renewing_customer(platform, amount)
                 for segment, amount in (("high_value", 60000), ("low_value", 900), ("default", 5000))}
    platform.at(platform.sim.sim.now() + timedelta(days=95))  # three paid renewals
    for ids in customers.values():
        platform.sim.sim.force_card(ids["pm"], "insufficient_funds")
    platform.at(platform.sim.sim.now() + timedelta(days=31))  # the next renewal declines
    for segment, ids in customers.items():
        state = wait(lambda ids=ids: (s := platform.state(ids["customer"]))["cases"] and all(
            c["state"] != "classifying" for c in s["cases"].values()) and s, f"{segment} classified")
        cases = [c for c in state["cases"].values() if c["state"] != "healthy"]
        # a stable 5 % of invoices is the holdout arm (strategies/holdouts.json), whatever the segment
        assert cases and {c["strategy"]["segment"] for c in cases} <= {segment, "holdout"}, [
            c["explanation"] for c in cases]
        assert state["customer_since"] is not None  # read once through the API: tenure is real
    alerts = [n for ids in customers.values() for n, p in platform.trail(ids["customer"])
              if n == "NotificationRequested" and "first" in str(p.get("kind"))]
    assert alerts == []  # the new-customer first-failure alert is for new customers only


def test_observe_mode_charges_nothing_and_emails_no_customer(platform: Platform) -> None:
    tenant = f"shadow{uuid.uuid4().hex[:6]}"
    with psycopg.connect(platform.database_url) as conn:
        conn.execute("INSERT INTO tenants (tenant_id, name, retry_mode) VALUES (%s, %s, 'observe')", (tenant, tenant))
    platform.endpoint("2020-08-27", ["customer.deleted"])  # the default tenant hears none of this
    endpoint = platform.sim.sim.add_webhook_endpoint(f"{platform.gateway}/webhooks/stripe/{tenant}",
                                                     api_version="2020-08-27", secret=SECRET)
    try:
        soft = failing_customer(platform)
        hard = failing_customer(platform, card="pm_card_chargeDeclinedExpiredCard")
        platform.deliver()
        start = platform.sim.sim.now()
        for day in (1, 2, 5, 12, 40):
            platform.at(start + timedelta(days=day))
    finally:
        platform.sim.sim.delete_webhook_endpoint(endpoint.id)
    for ids in (soft, hard):
        entries = platform.charges(ids["invoice"])
        assert [e.source for e in entries] == ["automatic"]  # the provider's own first attempt, nothing of ours
        assert platform.mails(ids["invoice"]) == []
        trail = platform.trail(ids["customer"])
        assert "ShadowDecision" in names(trail) and "AttemptStarted" not in names(trail)
