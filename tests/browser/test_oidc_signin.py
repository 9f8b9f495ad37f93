"""OpenID Connect sign-in end to end: Debian's chromium (driven by Playwright) signs in through a real OpenID
provider (npm `oidc-provider`, started here) to a real gateway; then forged state, a replayed callback, a replayed
code, a tampered cookie, CSRF and sign-out. Installed by scripts/test-deps.sh (the README's test command)."""

from __future__ import annotations

import logging
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from gateway.app import create_app
from gateway.auth import cookies
from settings import load_settings
from tests.support.principals import ensure_tenant
from tests.support.servers import ServerThread, free_port

OIDC_DIR = Path(__file__).resolve().parents[1] / "oidc"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CLIENT_ID = "payrisk-dashboard"
CLIENT_SECRET = "oidc-client-secret-" + uuid.uuid4().hex
MASTER = "browser-master-key-" + "b" * 32


@pytest.fixture(scope="module")
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep()
    logging.getLogger().addHandler(handler)
    yield lines
    logging.getLogger().removeHandler(handler)


@pytest.fixture(scope="module")
def sites(database_url: str, redis_url: str, log_lines: list[str]) -> Iterator[dict[str, str]]:
    """The OpenID provider (node) and the gateway configured to sign in with it."""
    assert (OIDC_DIR / "node_modules" / "oidc-provider").is_dir(), "run scripts/test-deps.sh (scripts/test.sh does)"
    ensure_tenant(database_url, "acme")
    idp_port, gw_port = free_port(), free_port()
    gateway = f"http://127.0.0.1:{gw_port}"
    node = shutil.which("node")
    assert node is not None
    idp = subprocess.Popen([node, "provider.mjs", str(idp_port), CLIENT_ID, CLIENT_SECRET, f"{gateway}/auth/callback"],
                           cwd=OIDC_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert idp.stdout is not None
        seen: list[str] = []
        while not seen or not seen[-1].startswith("ready"):  # warnings (e.g. the Node.js version) may come first
            seen.append(idp.stdout.readline())
            assert seen[-1] and len(seen) < 20, seen
        line = seen[-1]
        issuer = line.split()[1]
        mapping = [{"group": "acme-admins", "tenant": "acme", "role": "admin"},
                   {"email": "bob@acme.test", "tenant": "acme", "role": "viewer"}]
        settings = load_settings(environ={}, dotenv=None, database_url=database_url, redis_url=redis_url,
                                 sweep_interval_seconds=3600, secret_keys=(MASTER,), oidc_issuer=issuer,
                                 oidc_client_id=CLIENT_ID, oidc_client_secret=CLIENT_SECRET,
                                 oidc_scopes="openid email groups", oidc_mapping=mapping)
        with ServerThread(create_app(settings), port=gw_port):
            yield {"gateway": gateway, "issuer": issuer}
    finally:
        idp.terminate()
        idp.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def sign_in(page: Page, gateway: str, login: str) -> list[str]:
    """Sign in through the provider's pages; returns the callback URLs the browser was sent to."""
    callbacks: list[str] = []
    page.on("request", lambda r: callbacks.append(r.url) if r.url.startswith(f"{gateway}/auth/callback") else None)
    page.goto(f"{gateway}/auth/login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    if page.locator("button:has-text('Continue')").count():  # the provider's consent page
        page.click("button:has-text('Continue')")
    page.wait_for_url(lambda url: url.startswith(gateway), timeout=15_000)
    return callbacks


def fresh_state(page: Page, sites: dict[str, str]) -> str:
    """Start a genuine sign-in in this browser (its cookie jar receives the login-binding cookie) without
    following it to the provider, and return its `state` from the authorization request."""
    started = page.context.request.get(f"{sites['gateway']}/auth/login", max_redirects=0)
    assert started.status == 302
    location = started.headers["location"]
    assert location.startswith(sites["issuer"] + "/auth?")
    query = parse_qs(urlsplit(location).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"] and query["nonce"]
    return query["state"][0]


def problem(page: Page) -> dict[str, Any]:
    text = page.locator("body").inner_text()
    import json

    parsed: dict[str, Any] = json.loads(text)
    return parsed


def test_a_person_signs_in_with_code_and_pkce_and_signs_out(sites: dict[str, str], browser: Browser,
                                                            log_lines: list[str]) -> None:
    gateway = sites["gateway"]
    context = browser.new_context()
    page = context.new_page()
    callbacks = sign_in(page, gateway, "alice")
    assert page.url == f"{gateway}/auth/session"
    assert page.locator("#tenant").inner_text() == "acme"
    assert page.locator("#scopes").inner_text() == "['admin']"
    query = parse_qs(urlsplit(callbacks[0]).query)
    assert set(query) >= {"code", "state"}
    session = next(c for c in context.cookies() if c["name"] == cookies.SESSION_COOKIE)
    assert session["httpOnly"] and session["sameSite"] == "Lax" and not session["secure"]  # plain HTTP here
    # the signed-in browser reads the API with its cookie, and a change without the CSRF token is refused
    api = context.request
    assert api.get(f"{gateway}/api/cases").status == 200
    refused = api.put(f"{gateway}/api/customers/cus_x/profile", data={"country": "DE"})
    assert refused.status == 403 and refused.json()["type"].endswith("/csrf")
    # the authorization request carried a PKCE S256 challenge and a nonce
    page.click("#sign-out")
    assert page.locator("#signed-out").inner_text() == "Signed out"
    page.goto(f"{gateway}/auth/session")
    assert problem(page)["status"] == 401
    leaked = [line for line in log_lines if CLIENT_SECRET in line or session["value"] in line]
    assert leaked == []
    context.close()


def test_forged_state_replayed_callback_and_replayed_code_are_refused(sites: dict[str, str],
                                                                      browser: Browser) -> None:
    gateway = sites["gateway"]
    context = browser.new_context()
    page = context.new_page()
    first = sign_in(page, gateway, "alice")[0]
    params = parse_qs(urlsplit(first).query)
    code = params["code"][0]
    # a forged state: never issued by this gateway
    page.goto(f"{gateway}/auth/callback?code={code}&state=forged-{uuid.uuid4().hex}")
    assert problem(page)["status"] == 400 and "state" in problem(page)["detail"]
    # the same callback again: its state was taken once
    page.goto(first)
    assert problem(page)["status"] == 400 and "already used" in problem(page)["detail"]
    # the old code under a fresh, genuine state: the provider refuses a code used twice
    state = fresh_state(page, sites)
    page.goto(f"{gateway}/auth/callback?code={code}&state={state}")
    assert problem(page)["status"] == 400 and "invalid_grant" in problem(page)["detail"]
    context.close()


def test_a_tampered_cookie_or_a_sign_in_from_another_browser_is_refused(sites: dict[str, str],
                                                                       browser: Browser) -> None:
    gateway = sites["gateway"]
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, gateway, "bob")
    assert page.locator("#scopes").inner_text() == "['read']"  # bob is mapped by email to viewer
    session = next(c for c in context.cookies() if c["name"] == cookies.SESSION_COOKIE)
    value = session["value"]
    tampered = value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB")
    context.add_cookies([{"name": cookies.SESSION_COOKIE, "value": tampered, "url": gateway}])
    page.goto(f"{gateway}/auth/session")
    assert problem(page)["status"] == 401
    # a sign-in started in this browser and finished in another (no login-binding cookie there) is refused
    other = browser.new_context()
    state = fresh_state(page, sites)
    victim = other.new_page()
    victim.goto(f"{gateway}/auth/callback?code=stolen&state={state}")
    assert problem(victim)["status"] == 400 and "another browser" in problem(victim)["detail"]
    other.close()
    context.close()


def test_a_person_no_rule_maps_is_not_let_in(sites: dict[str, str], browser: Browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, sites["gateway"], "mallory")
    assert problem(page)["status"] == 403
    assert not [c for c in context.cookies() if c["name"] == cookies.SESSION_COOKIE]
    context.close()
