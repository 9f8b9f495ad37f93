"""A dashboard session started with an API key lives only while the key does: revoking the key (admin API or
`payrisk keys revoke`) or its expiry ends the session at its next request. Real PostgreSQL, the real app over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg
import pytest

from gateway.app import create_app
from settings import load_settings
from tests.support.principals import bearer, make_key
from tests.support.servers import ServerThread

MASTER = "key-sessions-master-" + "k" * 32


@pytest.fixture(scope="module")
def gateway(database_url: str, redis_url: str) -> Iterator[str]:
    settings = load_settings(environ={}, dotenv=None, database_url=database_url, redis_url=redis_url,
                             sweep_interval_seconds=3600, secret_keys=(MASTER,))
    with ServerThread(create_app(settings)) as server:
        yield server.url


@contextmanager
def signed_in(gateway: str, key: str) -> Iterator[httpx.Client]:
    """A browser that signed in to the dashboard with `key` (the key is not sent again after this)."""
    with httpx.Client(base_url=gateway, timeout=10) as client:
        answer = client.post("/dashboard/login", data={"api_key": key})
        assert answer.status_code == 303 and "payrisk_session" in client.cookies
        yield client


def assert_signed_out(browser: httpx.Client) -> None:
    page = browser.get("/dashboard")
    assert page.status_code == 303 and page.headers["location"].startswith("/dashboard/login")
    assert browser.get("/auth/session").status_code == 401


def key_id(key: str) -> str:
    return key[: len("prk_") + 8]


def test_revoking_the_key_through_the_admin_api_ends_its_dashboard_session_at_once(gateway: str,
                                                                                  database_url: str) -> None:
    tenant = f"ks_{uuid.uuid4().hex[:8]}"
    key, admin = make_key(database_url, tenant, ("write",)), make_key(database_url, tenant, ("admin",))
    with signed_in(gateway, key) as browser:
        assert browser.get("/dashboard").status_code == 200
        revoked = httpx.delete(f"{gateway}/api/admin/keys/{key_id(key)}", headers=bearer(admin), timeout=10)
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        assert_signed_out(browser)
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FILTER (WHERE revoked_at IS NULL) FROM web_sessions"
                           " WHERE api_key_id = %s", (key_id(key),)).fetchone()
    assert row == (0,)  # the session rows say so too, not only the per-request check


def test_revoking_the_key_with_the_cli_ends_its_dashboard_session(gateway: str, database_url: str) -> None:
    tenant = f"ks_{uuid.uuid4().hex[:8]}"
    key = make_key(database_url, tenant, ("read",))
    with signed_in(gateway, key) as browser:
        assert browser.get("/dashboard").status_code == 200
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYRISK_", "STRIPE_", "OIDC_"))}
        env.update(DATABASE_URL=database_url, PAYRISK_SECRET_KEY=MASTER)
        done = subprocess.run([sys.executable, "-m", "payrisk.cli", "keys", "revoke", key_id(key)], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert_signed_out(browser)


def test_a_key_that_expires_after_sign_in_ends_its_dashboard_session(gateway: str, database_url: str) -> None:
    tenant = f"ks_{uuid.uuid4().hex[:8]}"
    key = make_key(database_url, tenant, ("read",))
    with signed_in(gateway, key) as browser:
        assert browser.get("/dashboard").status_code == 200
        with psycopg.connect(database_url, autocommit=True) as conn:  # the key's expiry passes
            conn.execute("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE key_id = %s",
                         (key_id(key),))
        assert_signed_out(browser)


def test_a_session_never_outlives_the_expiry_its_key_had_at_sign_in(gateway: str, database_url: str) -> None:
    tenant = f"ks_{uuid.uuid4().hex[:8]}"
    key = make_key(database_url, tenant, ("read",))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE api_keys SET expires_at = now() + interval '1 hour' WHERE key_id = %s", (key_id(key),))
    with signed_in(gateway, key), psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT s.expires_at <= k.expires_at FROM web_sessions s JOIN api_keys k"
                           " ON k.key_id = s.api_key_id WHERE s.api_key_id = %s", (key_id(key),)).fetchone()
    assert row == (True,)


def test_revoking_one_key_leaves_the_session_of_another_key_signed_in(gateway: str, database_url: str) -> None:
    tenant = f"ks_{uuid.uuid4().hex[:8]}"
    kept, dropped = make_key(database_url, tenant, ("read",)), make_key(database_url, tenant, ("read",))
    admin = make_key(database_url, tenant, ("admin",))
    with signed_in(gateway, kept) as mine, signed_in(gateway, dropped) as theirs:
        assert httpx.delete(f"{gateway}/api/admin/keys/{key_id(dropped)}", headers=bearer(admin),
                            timeout=10).status_code == 200
        assert_signed_out(theirs)
        assert mine.get("/dashboard").status_code == 200
