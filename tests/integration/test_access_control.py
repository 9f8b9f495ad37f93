"""Access control over real HTTP: every route refuses a request without a principal, scopes are enforced,
tenants never see each other, revoked and expired keys stop working, signed-in sessions need their CSRF token,
and no answer or log line carries a secret."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb
from starlette.routing import Route

from actors.domain.case import empty_state, evolve
from gateway.app import ROUTES, create_app
from gateway.auth import cookies
from gateway.auth.policy import is_page
from settings import load_settings
from store import Database
from store import sessions as session_store
from store.secrets import Keyring
from tests.support.principals import bearer, ensure_tenant, make_key, run_async
from tests.support.servers import ServerThread

MASTER = "test-master-key-" + "m" * 32
STRIPE_KEY = "sk_test_tenantsecret" + uuid.uuid4().hex
WEBHOOK_SECRET = "whsec_tenantsecret" + uuid.uuid4().hex
#: routes anyone may call: the webhooks (their own signature check), health, and the two legs of sign-in
PUBLIC = {"/healthz", "/readyz", "/auth/login", "/auth/callback"}


@pytest.fixture(scope="module")
def gateway(database_url: str, redis_url: str, caplog_module: list[str]) -> Iterator[str]:
    settings = load_settings(environ={}, dotenv=None, database_url=database_url, redis_url=redis_url,
                             sweep_interval_seconds=3600, secret_keys=(MASTER,))
    with ServerThread(create_app(settings)) as server:
        yield server.url


@pytest.fixture(scope="module")
def caplog_module() -> Iterator[list[str]]:
    """Every log record of the module's gateway, as text (the secrets grep reads them)."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep()
    logging.getLogger().addHandler(handler)
    yield lines
    logging.getLogger().removeHandler(handler)


def seed_customer(database_url: str, tenant: str, customer: str) -> int:
    """One failed invoice of `customer`: a delivery, its events and the checkpoint they fold into."""
    ensure_tenant(database_url, tenant)
    payload = {"invoice_id": f"in_{customer}", "at": "2025-03-01T10:00:00+00:00", "amount_due": 1200,
               "currency": "usd", "customer_email": f"{customer}@example.com"}
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        row = conn.execute(
            "INSERT INTO deliveries (tenant_id, provider, provider_event_id, event_type, customer_id, body, headers,"
            " status) VALUES (%s, 'stripe', %s, 'invoice.payment_failed', %s, %s, '{}', 'applied')"
            " RETURNING delivery_id", (tenant, f"evt_{uuid.uuid4().hex}", customer, b'{"id": "evt"}')).fetchone()
        assert row is not None
        payload["delivery_id"] = row[0]
        conn.execute("INSERT INTO events (tenant_id, stream_id, version, event_type, payload)"
                     " VALUES (%s, %s, 1, 'PaymentFailed', %s)", (tenant, customer, Jsonb(payload)))
        state = evolve(empty_state(tenant, customer), "PaymentFailed", payload)
        conn.execute("INSERT INTO checkpoints (tenant_id, stream_id, version, state) VALUES (%s, %s, 1, %s)",
                     (tenant, customer, Jsonb(state)))
    return int(row[0])


def concrete(route: Route) -> str:
    values = {"tenant": "default"}
    return re.sub(r"\{(\w+)(:int)?\}", lambda m: "1" if m.group(2) else values.get(m.group(1), "x"), route.path)


def every_protected_route() -> list[tuple[str, str]]:
    found = []
    for route in ROUTES:
        # pages for people refuse with a sign-in redirect or a readable page: tests/integration/test_dashboard_access.py
        if not isinstance(route, Route) or route.path.startswith("/webhooks/") or route.path in PUBLIC \
                or is_page(route.path):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            found.append((method, concrete(route)))
    return found


def test_the_enumeration_sees_every_route_of_the_app() -> None:
    listed = {path for _, path in every_protected_route()}
    assert {"/api/deliveries", "/api/customers/x/profile", "/api/admin/keys", "/metrics", "/openapi.json",
            "/auth/session", "/auth/logout", "/api/customers/x/forget"} <= listed
    assert len(every_protected_route()) >= 20


@pytest.mark.parametrize(("method", "path"), every_protected_route())
def test_every_route_refuses_a_request_without_a_principal(gateway: str, method: str, path: str) -> None:
    response = httpx.request(method, gateway + path, json={}, timeout=10)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 401 and response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


def test_the_public_routes_answer_without_a_principal(gateway: str) -> None:
    assert httpx.get(gateway + "/healthz", timeout=10).status_code == 200
    assert httpx.get(gateway + "/readyz", timeout=10).status_code in (200, 503)
    # a webhook without a signature is refused by its own check (400), not by the access control (401)
    assert httpx.post(gateway + "/webhooks/stripe", content=b"{}", timeout=10).status_code == 400
    # sign-in is not configured here: the login route says so instead of asking for a principal
    assert httpx.get(gateway + "/auth/login", timeout=10).status_code == 404


def test_a_wrong_scheme_or_a_made_up_key_is_a_401(gateway: str, database_url: str) -> None:
    key = make_key(database_url, "default", ("read",))
    for header in (f"Basic {key}", "Bearer", f"Bearer {key[:-1]}x", "Bearer prk_00000000_" + "a" * 43):
        response = httpx.get(gateway + "/api/deliveries", headers={"Authorization": header}, timeout=10)
        assert response.status_code == 401, header
    assert httpx.get(gateway + "/api/deliveries", headers=bearer(key), timeout=10).status_code == 200


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p in every_protected_route()
                                              if m != "GET" and p != "/auth/logout"])
def test_a_read_key_on_a_state_changing_route_is_a_403(gateway: str, database_url: str, method: str,
                                                        path: str) -> None:
    key = make_key(database_url, "default", ("read",))
    response = httpx.request(method, gateway + path, json={}, headers=bearer(key), timeout=10)
    assert response.status_code == 403, response.text
    assert response.json()["type"].endswith("/forbidden")


def test_a_write_key_may_change_a_profile_but_not_administer(gateway: str, database_url: str) -> None:
    key = make_key(database_url, "default", ("write",))
    assert httpx.get(gateway + "/api/admin/keys", headers=bearer(key), timeout=10).status_code == 403
    assert httpx.post(gateway + "/api/customers/x/forget", headers=bearer(key), timeout=10).status_code == 403
    # allowed in, then validated at the edge (no Ray is needed for this answer)
    response = httpx.put(gateway + "/api/customers/c1/profile", json={"colour": "red"}, headers=bearer(key),
                         timeout=10)
    assert response.status_code == 400 and response.json()["type"].endswith("/invalid-profile")


def test_a_revoked_or_expired_key_is_a_401(gateway: str, database_url: str) -> None:
    admin = make_key(database_url, "default", ("admin",))
    made = httpx.post(gateway + "/api/admin/keys", json={"scopes": ["read"]}, headers=bearer(admin), timeout=10)
    assert made.status_code == 201
    key, key_id = made.json()["key"], made.json()["id"]
    assert key.startswith(key_id + "_")
    assert httpx.get(gateway + "/api/cases", headers=bearer(key), timeout=10).status_code == 200
    revoked = httpx.delete(f"{gateway}/api/admin/keys/{key_id}", headers=bearer(admin), timeout=10)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    answer = httpx.get(gateway + "/api/cases", headers=bearer(key), timeout=10)
    assert answer.status_code == 401 and "revoked" in answer.json()["detail"]
    expired = make_key(database_url, "default", ("read",), expires_at=datetime.now(UTC) - timedelta(seconds=1))
    answer = httpx.get(gateway + "/api/cases", headers=bearer(expired), timeout=10)
    assert answer.status_code == 401 and "expired" in answer.json()["detail"]


def test_last_use_is_recorded_and_the_hash_is_never_listed(gateway: str, database_url: str) -> None:
    admin = make_key(database_url, "default", ("admin",))
    httpx.get(gateway + "/api/cases", headers=bearer(admin), timeout=10)
    listed = httpx.get(gateway + "/api/admin/keys", headers=bearer(admin), timeout=10).json()["data"]
    mine = next(k for k in listed if admin.startswith(k["key_id"] + "_"))
    assert mine["last_used_at"] is not None and "key_hash" not in mine and "key" not in mine
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT key_hash FROM api_keys WHERE key_id = %s", (mine["key_id"],)).fetchone()
    assert stored is not None and admin.encode() not in bytes(stored[0])


def test_tenant_a_never_sees_tenant_b(gateway: str, database_url: str) -> None:
    a, b = f"a_{uuid.uuid4().hex[:8]}", f"b_{uuid.uuid4().hex[:8]}"
    ensure_tenant(database_url, a)
    delivery = seed_customer(database_url, b, "cus_of_b")
    key_a = make_key(database_url, a, ("admin",))
    key_b = make_key(database_url, b, ("read",))
    # tenant B's own key sees its customer ...
    assert httpx.get(gateway + "/api/customers/cus_of_b", headers=bearer(key_b), timeout=10).status_code == 200
    # ... and tenant A's, even an admin's, never does: 404 (not 403), whether by path or by `?tenant=`
    for path in ("/api/customers/cus_of_b", "/api/customers/cus_of_b/timeline", f"/api/deliveries/{delivery}",
                 f"/api/customers/cus_of_b?tenant={b}", f"/api/cases?tenant={b}",
                 f"/api/analytics/summary?tenant={b}", f"/api/tenants/{b}/classification-overrides",
                 f"/api/admin/tenants/{b}", f"/api/admin/audit?tenant={b}"):
        response = httpx.get(gateway + path, headers=bearer(key_a), timeout=10)
        assert response.status_code == 404, (path, response.text)
    cases = httpx.get(gateway + "/api/cases", headers=bearer(key_a), timeout=10).json()
    assert cases["tenant"] == a and cases["data"] == []
    assert httpx.get(gateway + "/api/deliveries", headers=bearer(key_a), timeout=10).json()["data"] == []
    summary = httpx.get(gateway + "/api/analytics/summary", headers=bearer(key_a), timeout=10).json()
    assert summary["tenant"] == a
    forget = httpx.post(gateway + "/api/customers/cus_of_b/forget", headers=bearer(key_a), timeout=10)
    assert forget.status_code == 404


def test_a_platform_admin_acts_across_tenants_and_that_is_recorded(gateway: str, database_url: str,
                                                                   platform_key: str) -> None:
    b = f"b_{uuid.uuid4().hex[:8]}"
    ensure_tenant(database_url, b)
    seed_customer(database_url, b, "cus_platform_read")
    response = httpx.get(f"{gateway}/api/customers/cus_platform_read?tenant={b}", headers=bearer(platform_key),
                         timeout=10)
    assert response.status_code == 200
    audit = httpx.get(f"{gateway}/api/admin/audit?tenant={b}", headers=bearer(platform_key), timeout=10).json()
    crossed = [e for e in audit["data"] if e["cross_tenant"] and e["target"] == "/api/customers/cus_platform_read"]
    assert crossed and crossed[0]["principal"].startswith("key:prk_")
    tenant_key = make_key(database_url, b, ("admin",))
    made = httpx.post(gateway + "/api/admin/keys", json={"scopes": ["read"], "platform": True},
                      headers=bearer(tenant_key), timeout=10)
    assert made.status_code == 403


def test_tenants_are_administered_with_secrets_masked_and_changes_audited(gateway: str, database_url: str,
                                                                          platform_key: str,
                                                                          caplog_module: list[str]) -> None:
    tenant = f"t_{uuid.uuid4().hex[:8]}"
    created = httpx.post(gateway + "/api/admin/tenants", headers=bearer(platform_key), timeout=10,
                         json={"tenant_id": tenant, "name": "Acme", "timezone": "Europe/Berlin",
                               "stripe_api_key": STRIPE_KEY, "stripe_webhook_secrets": [WEBHOOK_SECRET]})
    assert created.status_code == 201, created.text
    assert created.json()["secrets"]["stripe_api_key"] == f"sk_test_…{STRIPE_KEY[-4:]}"
    tenant_admin = make_key(database_url, tenant, ("admin",))
    changed = httpx.patch(f"{gateway}/api/admin/tenants/{tenant}", headers=bearer(tenant_admin), timeout=10,
                          json={"retry_mode": "observe", "quiet_hours": {"start": "22:00", "end": "07:00"}})
    assert changed.status_code == 200 and changed.json()["retry_mode"] == "observe"
    bad = httpx.patch(f"{gateway}/api/admin/tenants/{tenant}", headers=bearer(tenant_admin), timeout=10,
                      json={"name": "a\u0000b"})
    assert bad.status_code == 400 and bad.json()["field"] == "name"
    audit = httpx.get(gateway + "/api/admin/audit", headers=bearer(tenant_admin), timeout=10).json()["data"]
    updated = next(e for e in audit if e["action"] == "tenant.updated")
    assert updated["before"]["retry_mode"] == "own" and updated["after"]["retry_mode"] == "observe"
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT ciphertext FROM tenant_secrets WHERE tenant_id = %s", (tenant,)).fetchall()
    assert len(rows) == 2 and all(STRIPE_KEY.encode() not in bytes(r[0]) for r in rows)
    answers = [created.text, changed.text, httpx.get(gateway + "/api/admin/audit", headers=bearer(tenant_admin),
                                                     timeout=10).text,
               httpx.get(f"{gateway}/api/admin/tenants/{tenant}", headers=bearer(tenant_admin), timeout=10).text,
               httpx.get(gateway + "/api/admin/tenants", headers=bearer(platform_key), timeout=10).text]
    for text in [*answers, *caplog_module, dump_tables(database_url)]:
        assert STRIPE_KEY not in text and WEBHOOK_SECRET not in text
        assert STRIPE_KEY[8:] not in text and WEBHOOK_SECRET[6:] not in text


def dump_tables(database_url: str) -> str:
    """Every row of every table, as text (what an attacker with a database dump would read)."""
    with psycopg.connect(database_url) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return "\n".join(str(row) for t in tables for row in conn.execute(f'SELECT "{t}"::text FROM "{t}"'))


def a_session(database_url: str, tenant: str, role: str, platform: bool = False) -> tuple[str, str]:
    """A signed-in session as /auth/callback makes one: (signed cookie value, CSRF token)."""
    ensure_tenant(database_url, tenant)

    async def make() -> tuple[str, str]:
        db = Database(database_url, max_size=1)
        await db.open()
        try:
            async with db.connection() as conn:
                return await session_store.create(conn, tenant=tenant, subject="sub-1", email=None, role=role,
                                                  platform=platform, ttl_seconds=600)
        finally:
            await db.close()

    session_id, csrf = run_async(make)
    return cookies.sign(Keyring((MASTER,)).session_key(), session_id), csrf


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p in every_protected_route() if m != "GET"])
def test_a_session_without_its_csrf_token_changes_nothing(gateway: str, database_url: str, method: str,
                                                           path: str) -> None:
    signed, csrf = a_session(database_url, "default", "admin", platform=True)
    jar = {cookies.SESSION_COOKIE: signed}
    response = httpx.request(method, gateway + path, json={}, cookies=jar, timeout=10)
    assert response.status_code == 403 and response.json()["type"].endswith("/csrf"), response.text
    forged = httpx.request(method, gateway + path, json={}, cookies=jar, headers={"X-CSRF-Token": csrf[:-2] + "xx"},
                           timeout=10)
    assert forged.status_code == 403
    cross_site = httpx.request(method, gateway + path, json={}, cookies=jar, timeout=10,
                               headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"})
    assert cross_site.status_code == 403


def test_a_session_with_its_token_signs_out_and_a_tampered_cookie_is_a_401(gateway: str, database_url: str) -> None:
    signed, csrf = a_session(database_url, "default", "viewer")
    jar = {cookies.SESSION_COOKIE: signed}
    me = httpx.get(gateway + "/auth/session", cookies=jar, timeout=10)
    assert me.status_code == 200 and me.json()["scopes"] == ["read"]
    page = httpx.get(gateway + "/auth/session", cookies=jar, headers={"Accept": "text/html"}, timeout=10)
    assert f"value='{csrf}'" in page.text and page.headers["cache-control"] == "no-store"
    tampered = signed[:-3] + ("AAA" if not signed.endswith("AAA") else "BBB")
    assert httpx.get(gateway + "/auth/session", cookies={cookies.SESSION_COOKIE: tampered},
                     timeout=10).status_code == 401
    # a viewer may sign out (a form post with the token), though it may change nothing else
    out = httpx.post(gateway + "/auth/logout", data={"csrf_token": csrf}, cookies=jar, timeout=10)
    assert out.status_code == 200 and "payrisk_session=;" in out.headers["set-cookie"]
    assert httpx.get(gateway + "/auth/session", cookies=jar, timeout=10).status_code == 401


def test_the_viewer_role_reads_but_never_writes(gateway: str, database_url: str) -> None:
    signed, csrf = a_session(database_url, "default", "viewer")
    jar = {cookies.SESSION_COOKIE: signed}
    assert httpx.get(gateway + "/api/cases", cookies=jar, timeout=10).status_code == 200
    response = httpx.put(gateway + "/api/customers/c1/profile", json={"country": "DE"}, cookies=jar,
                         headers={"X-CSRF-Token": csrf}, timeout=10)
    assert response.status_code == 403


def test_raw_bodies_are_for_admins_only(gateway: str, database_url: str) -> None:
    tenant = f"r_{uuid.uuid4().hex[:8]}"
    ensure_tenant(database_url, tenant)
    delivery = seed_customer(database_url, tenant, "cus_raw")
    reader, admin = make_key(database_url, tenant, ("read",)), make_key(database_url, tenant, ("admin",))
    seen: dict[str, Any] = httpx.get(f"{gateway}/api/deliveries/{delivery}", headers=bearer(reader), timeout=10).json()
    assert "body" not in seen and "headers" not in seen and seen["status"] == "applied"
    full = httpx.get(f"{gateway}/api/deliveries/{delivery}", headers=bearer(admin), timeout=10).json()
    assert full["body"] == '{"id": "evt"}'
