"""Tenants' own settings, end to end on Ray: a tenant given its own Stripe key through the admin API has its retries
charged (and its subscription cancelled) with that key while a tenant without one uses the installation's; a
tenant's branding names its dunning email and its quiet hours, changed through the admin API while the platform
runs, hold that email back. The Stripe simulator records which API key made each request; the email is received
by the aiosmtpd catcher; the clock is simulated."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
import ray
import stripe
from psycopg.types.json import Jsonb

from actors.clock import start_sim_clock
from actors.notifier.catcher import start_catcher
from actors.system import ActorSystem
from gateway.app import create_app
from settings import load_settings
from simulator.core import SimulatorSettings
from simulator.server import SimulatorServer
from tests.ray.test_stripe_scenarios import FAILURES, PRICE, Platform, wait
from tests.support.principals import bearer
from tests.support.servers import ServerThread

SECRET = "whsec_tenant_settings_flow"
MASTER = "tenant-settings-flow-master-" + "f" * 32
RUN = uuid.uuid4().hex[:10]
INSTALLATION_KEY = f"sk_test_installation_{RUN}"
TENANT_KEY = f"sk_test_tenant_own_{RUN}"
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
VERSION = "2026-06-24.dahlia"


class Tenants:
    """The platform plus the admin API, called with a platform administrator's key."""

    def __init__(self, platform: Platform, admin_key: str) -> None:
        self.p, self._auth = platform, bearer(admin_key)

    def create(self, **fields: Any) -> str:
        tenant = f"t{uuid.uuid4().hex[:8]}"
        answer = httpx.post(f"{self.p.gateway}/api/admin/tenants", json={"tenant_id": tenant, "name": tenant, **fields},
                            headers=self._auth, timeout=10)
        assert answer.status_code == 201, answer.text
        assert TENANT_KEY not in answer.text  # secrets are answered masked
        return tenant

    def update(self, tenant: str, **fields: Any) -> None:
        answer = httpx.patch(f"{self.p.gateway}/api/admin/tenants/{tenant}", json=fields, headers=self._auth,
                             timeout=10)
        assert answer.status_code == 200, answer.text

    def client(self, key: str) -> stripe.StripeClient:
        return stripe.StripeClient(key, base_addresses={"api": self.p.sim.url}, max_network_retries=0)

    def failing_customer(self, tenant: str, key: str, card: str) -> dict[str, str]:
        """A customer of `tenant` (its events go to the tenant's own webhook URL) whose first invoice failed."""
        c = self.client(key)
        customer = c.v1.customers.create(params={"email": f"{uuid.uuid4().hex[:8]}@example.com"})
        pm = c.v1.payment_methods.attach(card, params={"customer": customer.id})
        c.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": pm.id}})
        sub = c.v1.subscriptions.create(params={"customer": customer.id,  # type: ignore[typeddict-item]
                                                "items": [{"price_data": {**PRICE, "unit_amount": 2500}}]})
        return {"customer": customer.id, "sub": sub.id, "invoice": str(sub.latest_invoice)}


@pytest.fixture(scope="module")
def tenants(database_url: str, redis_url: str, ray_session: None, platform_key: str) -> Iterator[Tenants]:
    catcher = start_catcher(0, tempfile.mkdtemp(prefix="payrisk-mail-"))
    clock = start_sim_clock(T0)
    sim_settings = SimulatorSettings(seed=11, id_namespace=uuid.uuid4().hex, auto_deliver=False, start=T0,
                                     webhook_secret=SECRET, model="always_succeed",
                                     api_keys=(INSTALLATION_KEY, TENANT_KEY))  # one account, two keys
    with SimulatorServer(sim_settings) as sim:
        settings = load_settings(environ={}, dotenv=None, database_url=database_url, redis_url=redis_url,
                                 smtp_url=catcher.smtp_url, mail_from="billing@example.com",
                                 stripe_webhook_secrets=(SECRET,), shards=2, stripe_api_key=INSTALLATION_KEY,
                                 stripe_api_base=sim.url, sweep_interval_seconds=1.0, secret_keys=(MASTER,))
        system = ActorSystem(settings, clock="sim",
                             notifier_env={"SMTP_URL": catcher.smtp_url, "MAIL_FROM": "billing@example.com"})
        system.start(run_loops=False)
        with ServerThread(create_app(settings)) as gateway:
            sim.sim.update_webhook_endpoint(enabled_events=("customer.deleted",))  # the default tenant hears nothing
            yield Tenants(Platform(gateway.url, sim, system, catcher, database_url), platform_key)
        system.stop()
    ray.kill(clock)
    catcher.stop()


class Endpoint:
    """The simulator sends to one tenant's webhook URL while the block runs."""

    def __init__(self, t: Tenants, tenant: str) -> None:
        self.t, self.tenant = t, tenant

    def __enter__(self) -> None:
        self.endpoint = self.t.p.sim.sim.add_webhook_endpoint(f"{self.t.p.gateway}/webhooks/stripe/{self.tenant}",
                                                              api_version=VERSION, secret=SECRET,
                                                              enabled_events=tuple(FAILURES))

    def __exit__(self, *exc: object) -> None:
        self.t.p.sim.sim.delete_webhook_endpoint(self.endpoint.id)


def retried(t: Tenants, tenant: str, setup_key: str) -> list[Any]:
    """Fail a customer's invoice, let the scheduled retry run; the ledger entries of our retries (by our key)."""
    p = t.p
    with Endpoint(t, tenant):
        ids = t.failing_customer(tenant, setup_key, "pm_card_chargeDeclinedInsufficientFunds")
        p.deliver()
        case = wait(lambda: (c := p.case(ids["customer"], ids["invoice"], tenant))["state"] == "retry_scheduled"
                    and c, "retry scheduled")
        p.at(datetime.fromisoformat(case["next_action"]["at"]) + timedelta(seconds=1))
        return list(wait(lambda: [e for e in p.charges(ids["invoice"])
                                  if (e.idempotency_key or "").startswith(f"payrisk:{tenant}:")],
                         "our retry reached the provider"))


def test_a_tenant_with_its_own_stripe_key_has_its_retry_charged_with_that_key(tenants: Tenants) -> None:
    tenant = tenants.create(stripe_api_key=TENANT_KEY)
    ours = retried(tenants, tenant, setup_key=INSTALLATION_KEY)  # set up with the other key: the key is the tenant's
    assert {e.api_key for e in ours} == {TENANT_KEY}
    by_key = tenants.p.sim.sim.api_requests_by_key
    assert by_key[(TENANT_KEY, "POST", "/v1/invoices/{id}/pay")] >= 1


def test_a_tenant_without_its_own_key_has_its_retry_charged_with_the_installations(tenants: Tenants) -> None:
    tenant = tenants.create()
    ours = retried(tenants, tenant, setup_key=TENANT_KEY)
    assert {e.api_key for e in ours} == {INSTALLATION_KEY}


def test_final_actions_at_the_provider_use_the_tenants_own_key_else_the_installations(tenants: Tenants) -> None:
    p = tenants.p
    own, plain = tenants.create(stripe_api_key=TENANT_KEY), tenants.create()
    subs = {}
    for tenant in (own, plain):
        c = tenants.client(INSTALLATION_KEY)
        customer = c.v1.customers.create(params={"email": f"{uuid.uuid4().hex[:8]}@example.com"})
        pm = c.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
        c.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": pm.id}})
        sub = c.v1.subscriptions.create(params={"customer": customer.id,  # type: ignore[typeddict-item]
                                                "items": [{"price_data": {**PRICE, "unit_amount": 900}}]})
        subs[tenant] = sub
        with psycopg.connect(p.database_url, autocommit=True) as conn:  # what an exhausted case writes
            conn.execute("INSERT INTO outbox (tenant_id, topic, idempotency_key, stream_id, payload, available_at)"
                         " VALUES (%s, 'provider', %s, %s, %s, %s)",
                         (tenant, f"final:{tenant}:{sub.latest_invoice}", customer.id,
                          Jsonb({"action": "cancel_subscription", "invoice_id": str(sub.latest_invoice),
                                 "subscription_id": sub.id, "customer_id": customer.id}), p.sim.sim.now()))
    before = dict(p.sim.sim.api_requests_by_key)
    p.at(p.sim.sim.now() + timedelta(seconds=1))
    with psycopg.connect(p.database_url) as conn:
        left = conn.execute("SELECT tenant_id, last_error FROM outbox WHERE topic = 'provider' AND sent_at IS NULL"
                            " AND tenant_id IN (%s, %s)", (own, plain)).fetchall()
    assert left == []
    cancels = {key: n - before.get(key, 0) for key, n in p.sim.sim.api_requests_by_key.items()
               if key[1:] == ("DELETE", "/v1/subscriptions/{id}") and n > before.get(key, 0)}
    assert cancels == {(TENANT_KEY, "DELETE", "/v1/subscriptions/{id}"): 1,
                       (INSTALLATION_KEY, "DELETE", "/v1/subscriptions/{id}"): 1}
    for sub in subs.values():
        assert tenants.client(INSTALLATION_KEY).v1.subscriptions.retrieve(sub.id).status == "canceled"


def test_a_tenants_branding_names_its_dunning_email_and_its_quiet_hours_hold_it_back(tenants: Tenants) -> None:
    p = tenants.p
    brand = f"Acme Widgets {uuid.uuid4().hex[:4]}"
    tenant = tenants.create(branding={"name": brand, "support_email": "help@acme-widgets.example"})
    with Endpoint(tenants, tenant):
        ids = tenants.failing_customer(tenant, INSTALLATION_KEY, "pm_card_authenticationRequired")
        p.deliver()
        payload = wait(lambda: email_payload(p, tenant, ids["invoice"]), "the action-required email was decided")
        # while the platform runs, the tenant sets quiet hours around its customer's local time now
        now = p.sim.sim.now()
        zone = ZoneInfo(payload["timezone"] or "UTC")
        local = now.astimezone(zone)
        ends = (local + timedelta(hours=2)).replace(second=0, microsecond=0)
        tenants.update(tenant, quiet_hours={"start": f"{local - timedelta(hours=1):%H:%M}", "end": f"{ends:%H:%M}"})

        p.at(now + timedelta(minutes=1))
        assert p.mails(ids["invoice"]) == []  # held: quiet hours of the tenant's
        assert next_send(p, tenant, ids["invoice"]) == ends.astimezone(UTC)

        p.at(ends.astimezone(UTC) + timedelta(minutes=1))
        [message] = wait(lambda: [m for m in p.catcher.messages if ids["invoice"] in m.as_string()], "the email")
    assert brand in message["Subject"] and message["Subject"].startswith("Action needed")
    assert message["From"].addresses[0].display_name == brand
    assert message["Reply-To"] == "help@acme-widgets.example"
    text = message.get_body(preferencelist=("plain",))
    assert text is not None and "help@acme-widgets.example" in text.get_content()
    assert "payrisk" not in message["From"]


def email_payload(p: Platform, tenant: str, invoice: str) -> dict[str, Any] | None:
    with psycopg.connect(p.database_url) as conn:
        row = conn.execute("SELECT payload FROM outbox WHERE tenant_id = %s AND topic = 'email'"
                           " AND payload->>'invoice_id' = %s", (tenant, invoice)).fetchone()
    return dict(row[0]) if row else None


def next_send(p: Platform, tenant: str, invoice: str) -> datetime:
    with psycopg.connect(p.database_url) as conn:
        row = conn.execute("SELECT available_at FROM outbox WHERE tenant_id = %s AND topic = 'email'"
                           " AND payload->>'invoice_id' = %s AND sent_at IS NULL", (tenant, invoice)).fetchone()
    assert row is not None, "the email is no longer waiting"
    return datetime.fromisoformat(str(row[0])) if not isinstance(row[0], datetime) else row[0]
