"""Personal data on purpose: forgetting a customer leaves no trace of its email in any table and the analytics
unchanged; retention removes old raw bodies of applied deliveries and nothing else; the CLI does the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from actors.domain.case import empty_state, evolve
from gateway.app import create_app
from settings import load_settings
from tests.support.principals import bearer, ensure_tenant, make_key
from tests.support.servers import ServerThread
from tests.support.stripe_events import envelope, invoice


@pytest.fixture(scope="module")
def gateway(database_url: str, redis_url: str) -> Iterator[str]:
    settings = load_settings(environ={}, dotenv=None, database_url=database_url, redis_url=redis_url,
                             sweep_interval_seconds=3600)
    with ServerThread(create_app(settings)) as server:
        yield server.url


def seed_known_customer(database_url: str, tenant: str, customer: str, email: str, name: str = "Ada Lovelace",
                        street: str = "12 St James's Square") -> None:
    """A customer as the platform records one: the raw body (email, name, address), the events that carry the
    email, a profile with it, the email in the outbox and the notifications, and the checkpoint."""
    obj = invoice(f"in_{customer}", customer, amount=4200)
    obj.update(customer_email=email, customer_name=name,
               customer_address={"line1": street, "city": "London", "country": "GB"})
    body = envelope(f"evt_{uuid.uuid4().hex}", "invoice.payment_failed", obj)
    failed = {"invoice_id": f"in_{customer}", "at": "2025-03-01T10:00:00+00:00", "amount_due": 4200,
              "currency": "gbp", "customer_email": email}
    profile = {"profile": {"email": email, "country": "GB"}, "request_id": "r1", "at": "2025-03-01T10:05:00+00:00"}
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        row = conn.execute(
            "INSERT INTO deliveries (tenant_id, provider, provider_event_id, event_type, customer_id, body, headers,"
            " status) VALUES (%s, 'stripe', %s, 'invoice.payment_failed', %s, %s, %s, 'applied')"
            " RETURNING delivery_id", (tenant, f"evt_{uuid.uuid4().hex}", customer, body,
                                       Jsonb({"stripe-signature": "t=1,v1=x"}))).fetchone()
        assert row is not None
        failed["delivery_id"] = row[0]
        state = empty_state(tenant, customer)
        for version, (kind, payload) in enumerate([("PaymentFailed", failed), ("ProfileUpdated", profile)], 1):
            conn.execute("INSERT INTO events (tenant_id, stream_id, version, event_type, payload)"
                         " VALUES (%s, %s, %s, %s, %s)", (tenant, customer, version, kind, Jsonb(payload)))
            state = evolve(state, kind, payload)
        conn.execute("INSERT INTO checkpoints (tenant_id, stream_id, version, state) VALUES (%s, %s, 2, %s)",
                     (tenant, customer, Jsonb(state)))
        conn.execute("INSERT INTO outbox (tenant_id, topic, idempotency_key, stream_id, payload)"
                     " VALUES (%s, 'email', %s, %s, %s)", (tenant, f"email:{customer}", customer,
                                                           Jsonb({"to": email, "customer_id": customer})))
        conn.execute("INSERT INTO notifications (tenant_id, idempotency_key, customer_id, channel, recipient, sent_at,"
                     " detail) VALUES (%s, %s, %s, 'email', %s, now(), %s)",
                     (tenant, f"email:{customer}", customer, email, Jsonb({"to": email})))


def traces(database_url: str, needle: str) -> list[str]:
    """Every table whose rows, as text (bytea bodies decoded), contain `needle`."""
    found = []
    with psycopg.connect(database_url) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in tables:
            rows = conn.execute(f'SELECT "{table}"::text FROM "{table}"').fetchall()
            bodies = conn.execute("SELECT convert_from(body, 'UTF8') FROM deliveries").fetchall() \
                if table == "deliveries" else []
            if any(needle in str(r[0]) for r in [*rows, *bodies]):
                found.append(table)
    return found


def test_forgetting_a_customer_leaves_no_trace_of_its_email_and_the_analytics_unchanged(
        gateway: str, database_url: str) -> None:
    tenant, customer = f"p_{uuid.uuid4().hex[:8]}", "cus_ada"
    email = f"ada.{uuid.uuid4().hex[:6]}@example.com"
    ensure_tenant(database_url, tenant)
    seed_known_customer(database_url, tenant, customer, email)
    seed_known_customer(database_url, tenant, "cus_other", "grace@example.com", "Grace Hopper", "1 Navy Yard")
    admin, reader = make_key(database_url, tenant, ("admin",)), make_key(database_url, tenant, ("read",))
    assert set(traces(database_url, email)) >= {"deliveries", "events", "checkpoints", "outbox", "notifications"}
    before = httpx.get(gateway + "/api/analytics/summary", headers=bearer(admin), timeout=10).json()
    assert httpx.post(f"{gateway}/api/customers/{customer}/forget", headers=bearer(reader),
                      timeout=10).status_code == 403
    response = httpx.post(f"{gateway}/api/customers/{customer}/forget", headers=bearer(admin), timeout=10)
    assert response.status_code == 200, response.text
    assert traces(database_url, email) == []
    assert traces(database_url, "Lovelace") == [] and traces(database_url, "St James") == []
    assert set(traces(database_url, "grace@example.com")) >= {"deliveries", "events", "checkpoints"}  # only hers
    after = httpx.get(gateway + "/api/analytics/summary", headers=bearer(admin), timeout=10).json()
    assert after == before
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT event_type, payload FROM events WHERE tenant_id = %s AND stream_id = %s"
                            " ORDER BY version", (tenant, customer)).fetchall()
        stored = conn.execute("SELECT version, state FROM checkpoints WHERE tenant_id = %s AND stream_id = %s",
                              (tenant, customer)).fetchone()
    assert rows[-1][0] == "CustomerForgotten" and stored is not None and stored[0] == len(rows)
    folded = empty_state(tenant, customer)
    for kind, payload in rows:
        folded = evolve(folded, kind, payload)
    assert folded == stored[1]  # the log still replays to the checkpoint (I5)
    assert stored[1]["cases"][f"in_{customer}"]["amount_due"] == 4200
    audit = httpx.get(gateway + "/api/admin/audit?action=customer.forgotten", headers=bearer(admin),
                      timeout=10).json()["data"]
    assert [e["target"] for e in audit] == [customer]
    assert httpx.post(f"{gateway}/api/customers/cus_nobody/forget", headers=bearer(admin),
                      timeout=10).status_code == 404


def test_retention_removes_only_old_bodies_of_applied_deliveries(database_url: str) -> None:
    tenant = f"r_{uuid.uuid4().hex[:8]}"
    ensure_tenant(database_url, tenant)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE tenants SET settings = settings || '{\"raw_retention_days\": 30}' WHERE tenant_id = %s",
                     (tenant,))
        ids = {}
        for name, status, age in (("old_applied", "applied", 40), ("old_ignored", "ignored", 40),
                                  ("new_applied", "applied", 5), ("old_quarantined", "quarantined", 40),
                                  ("old_received", "received", 40)):
            row = conn.execute(
                "INSERT INTO deliveries (tenant_id, provider, provider_event_id, event_type, customer_id, body,"
                " headers, status, received_at) VALUES (%s, 'stripe', %s, 'invoice.payment_failed', 'c', %s, '{}',"
                " %s, now() - make_interval(days => %s)) RETURNING delivery_id",
                (tenant, f"evt_{uuid.uuid4().hex}", b'{"email": "x@example.com"}', status, age)).fetchone()
            assert row is not None
            ids[name] = row[0]
    result = run_cli(database_url, "retention", "run", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"removed": 2}
    with psycopg.connect(database_url) as conn:
        kept = dict(conn.execute("SELECT delivery_id, length(body) > 0 FROM deliveries WHERE tenant_id = %s",
                                 (tenant,)).fetchall())
        reasons = {r[0] for r in conn.execute("SELECT body_erased_reason FROM deliveries WHERE tenant_id = %s"
                                              " AND body_erased_at IS NOT NULL", (tenant,))}
    assert {name for name, i in ids.items() if not kept[i]} == {"old_applied", "old_ignored"}
    assert reasons == {"retention"}


def run_cli(database_url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYRISK_", "STRIPE_", "OIDC_"))}
    env.update(DATABASE_URL=database_url, PAYRISK_SECRET_KEY="cli-master-key-" + "c" * 32)
    return subprocess.run([sys.executable, "-m", "payrisk.cli", *args], env=env, capture_output=True, text=True,
                          input=stdin, timeout=60)


def test_the_cli_manages_keys_and_tenants_and_never_prints_a_secret(database_url: str) -> None:
    tenant = f"c_{uuid.uuid4().hex[:8]}"
    secret = "sk_test_cli" + uuid.uuid4().hex
    created = run_cli(database_url, "tenants", "create", tenant, "--name", "CLI Co", "--timezone", "Asia/Tokyo",
                      "--secrets-file", "-", stdin=json.dumps({"stripe_api_key": secret}))
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["secrets"]["stripe_api_key"] == f"sk_test_…{secret[-4:]}"
    bad = run_cli(database_url, "tenants", "update", tenant, "--timezone", "Mars/Olympus_Mons")
    assert bad.returncode == 2 and "timezone" in bad.stderr
    made = run_cli(database_url, "keys", "create", "--tenant", tenant, "--scope", "read", "--json")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["key"].startswith(key["id"] + "_")
    listed = run_cli(database_url, "keys", "list", "--tenant", tenant, "--json")
    assert key["id"] in listed.stdout and key["key"] not in listed.stdout
    assert run_cli(database_url, "keys", "revoke", key["id"]).returncode == 0
    shown = run_cli(database_url, "tenants", "show", tenant)
    for output in (created, bad, made, listed, shown, run_cli(database_url, "tenants", "list")):
        assert secret not in output.stdout + output.stderr
    with psycopg.connect(database_url) as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_events WHERE tenant_id = %s ORDER BY audit_id",
                                              (tenant,))]
        principals = {r[0] for r in conn.execute("SELECT via FROM audit_events WHERE tenant_id = %s", (tenant,))}
    assert actions == ["tenant.created", "key.created", "key.revoked"] and principals == {"cli"}


def test_rotating_the_master_key_keeps_every_secret_readable(database_url: str) -> None:
    tenant = f"k_{uuid.uuid4().hex[:8]}"
    secret = "sk_test_rot" + uuid.uuid4().hex
    old, new = "old-master-key-" + "o" * 32, "new-master-key-" + "n" * 32
    env_old = {"PAYRISK_SECRET_KEY": old}
    assert cli(database_url, env_old, "tenants", "create", tenant, "--secrets-file", "-",
               stdin=json.dumps({"stripe_api_key": secret})).returncode == 0
    unreadable = cli(database_url, {"PAYRISK_SECRET_KEY": new}, "secrets", "rotate", "--tenant", tenant)
    assert unreadable.returncode == 2 and "no longer lists" in unreadable.stderr
    rotated = cli(database_url, {"PAYRISK_SECRET_KEY": f"{new},{old}"}, "secrets", "rotate", "--tenant", tenant,
                  "--json")
    assert rotated.returncode == 0, rotated.stderr
    assert json.loads(rotated.stdout)["rewrapped"] >= 1
    shown = cli(database_url, {"PAYRISK_SECRET_KEY": new}, "tenants", "show", tenant)
    assert json.loads(shown.stdout)["secrets"]["stripe_api_key"] == f"sk_test_…{secret[-4:]}"


def cli(database_url: str, extra: dict[str, str], *args: str, stdin: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYRISK_", "STRIPE_", "OIDC_"))}
    env.update(DATABASE_URL=database_url, **extra)
    return subprocess.run([sys.executable, "-m", "payrisk.cli", *args], env=env, capture_output=True, text=True,
                          input=stdin, timeout=60)
