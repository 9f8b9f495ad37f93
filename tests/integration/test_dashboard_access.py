"""Access to the dashboard's pages over real HTTP: without a principal a page sends the browser to sign-in (an
action answers a readable 401 page), a read key may look but not act, a session may act only with its CSRF token,
another tenant's customer is not found, and the API-key sign-in starts a session of the key's tenant and role."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from starlette.routing import Route

from gateway.app import ROUTES, create_app
from gateway.auth.policy import PUBLIC, is_page
from settings import load_settings
from tests.integration.test_access_control import seed_customer
from tests.support.principals import bearer, make_key
from tests.support.servers import ServerThread

MASTER = "dashboard-access-key-" + "a" * 32


@pytest.fixture(scope="module")
def gateway(database_url: str, redis_url: str) -> Iterator[str]:
    settings = load_settings(environ={}, dotenv=None, database_url=database_url, redis_url=redis_url,
                             sweep_interval_seconds=3600, secret_keys=(MASTER,))
    with ServerThread(create_app(settings)) as server:
        yield server.url


def page_routes() -> list[tuple[str, str]]:
    found = []
    for route in ROUTES:
        if isinstance(route, Route) and is_page(route.path) and route.path not in PUBLIC:
            path = re.sub(r"\{(\w+)(:int)?\}", lambda m: "1" if m.group(2) else "x", route.path)
            found += [(method, path) for method in sorted((route.methods or set()) - {"HEAD"})]
    return found


def test_the_enumeration_sees_every_page() -> None:
    assert {("GET", "/dashboard"), ("GET", "/dashboard/cases.csv"), ("POST", "/dashboard/deliveries/1/replay"),
            ("POST", "/dashboard/customers/x/cases/x/x"), ("GET", "/docs")} <= set(page_routes())


@pytest.mark.parametrize(("method", "path"), page_routes())
def test_every_page_refuses_a_request_without_a_principal(gateway: str, method: str, path: str) -> None:
    response = httpx.request(method, gateway + path, timeout=10)
    if method == "GET":
        assert response.status_code == 303
        assert response.headers["location"].startswith("/dashboard/login?next=%2F")
    else:
        assert response.status_code == 401 and response.headers["content-type"].startswith("text/html")
        assert "<h1>401" in response.text


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p in page_routes() if m == "POST"])
def test_a_read_key_may_not_act(gateway: str, database_url: str, method: str, path: str) -> None:
    key = make_key(database_url, "default", ("read",))
    response = httpx.post(gateway + path, headers=bearer(key), timeout=10)
    assert response.status_code == 403 and "write" in response.text


def test_a_bad_filter_is_a_readable_400_page_and_another_tenants_customer_a_404(gateway: str,
                                                                                 database_url: str) -> None:
    seed_customer(database_url, "default", "cus_dash_mine")
    other = make_key(database_url, "dash-other", ("admin",))
    response = httpx.get(gateway + "/dashboard/cases?state=nonsense", headers=bearer(other), timeout=10)
    assert response.status_code == 400 and "state: must be one of" in response.text
    assert "<!doctype html>" in response.text.lower()
    response = httpx.get(gateway + "/dashboard/customers/cus_dash_mine", headers=bearer(other), timeout=10)
    assert response.status_code == 404 and "no customer" in response.text
    mine = make_key(database_url, "default", ("read",))
    assert httpx.get(gateway + "/dashboard/customers/cus_dash_mine", headers=bearer(mine),
                     timeout=10).status_code == 200


def test_api_key_sign_in_starts_a_session_of_the_keys_tenant_and_role(gateway: str, database_url: str) -> None:
    key = make_key(database_url, "default", ("write",))
    with httpx.Client(base_url=gateway, timeout=10) as client:
        refused = client.post("/dashboard/login", data={"api_key": key}, headers={"Origin": "https://evil.example"})
        assert refused.status_code == 403 and "payrisk_session" not in refused.cookies
        signed = client.post("/dashboard/login?next=/dashboard/cases", data={"api_key": key})
        assert signed.status_code == 303 and signed.headers["location"] == "/dashboard/cases"
        who = client.get("/auth/session").json()
        assert who["tenant"] == "default" and who["scopes"] == ["write"] and who["kind"] == "session"
        # an action without the session's CSRF token changes nothing
        refused = client.post("/dashboard/deliveries/1/replay", data={})
        assert refused.status_code == 403 and "CSRF" in refused.text
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT after FROM audit_events WHERE action = 'session.signed_in'"
                           " AND after->>'with' = 'api_key' ORDER BY audit_id DESC LIMIT 1").fetchone()
    assert row is not None and row[0]["role"] == "operator"
