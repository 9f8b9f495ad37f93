"""The admin dashboard end to end in Debian's chromium (Playwright): a real gateway, the customers' homes on Ray, the
Stripe simulator as the provider (retries go to it through the SDK), PostgreSQL — on a simulated clock.

Signs in with an API key, checks the overview against `/api/analytics/summary`, filters cases and exports them as
CSV, reads a customer's story, presses "retry now" with the keyboard (one charge in the simulator's ledger),
replays a quarantined delivery, and keeps a page of another tenant out. Every page: no JavaScript console error,
no axe-core (WCAG 2 A/AA) violation, a screenshot kept under tests/browser/artifacts/."""

from __future__ import annotations

import csv
import io
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import ray
import stripe
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

from actors.clock import start_sim_clock
from actors.notifier.catcher import CatcherHandle, start_catcher
from actors.placement import shard_index
from actors.system import ActorSystem
from gateway.app import create_app
from settings import load_settings
from simulator.core import SimulatorSettings
from simulator.server import SimulatorServer
from tests.support.principals import make_key
from tests.support.servers import ServerThread
from tests.support.stripe_events import envelope, invoice

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
AXE = Path(__file__).resolve().parent / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SECRET = "whsec_dashboard"
MASTER = "dashboard-master-key-" + "d" * 32
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
WINDOW = "from=2026-03-01&to=2026-03-09"
PRICE = {"currency": "usd", "product": "prod_sim", "recurring": {"interval": "month"}}


@dataclass
class Site:
    gateway: str
    sim: SimulatorServer
    system: ActorSystem
    database_url: str
    key: str  # tenant `default`, admin
    other_key: str  # tenant `other`
    customers: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def client(self) -> stripe.StripeClient:
        return stripe.StripeClient(self.sim.api_key, base_addresses={"api": self.sim.url}, max_network_retries=0)

    def api(self, path: str) -> Any:
        response = httpx.get(f"{self.gateway}{path}", headers={"Authorization": f"Bearer {self.key}"}, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def deliver(self) -> None:
        self.sim.flush(everything=True)
        wait(lambda: not self._pending(), "every delivery applied", timeout=60)

    def _pending(self) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute("SELECT delivery_id FROM deliveries WHERE status IN ('received', 'dispatched')"
                                ).fetchall()

    def case(self, customer: str, invoice_id: str) -> dict[str, Any]:
        shard = self.system.shards[shard_index("default", customer, len(self.system.shards))]
        return dict(ray.get(shard.state_of.remote("default", customer))["state"]["cases"][invoice_id])

    def failing(self, card: str, amount: int) -> dict[str, str]:
        c = self.client
        customer = c.v1.customers.create(params={"email": f"{uuid.uuid4().hex[:8]}@example.com"})
        pm = c.v1.payment_methods.attach(card, params={"customer": customer.id})
        c.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": pm.id}})
        sub = c.v1.subscriptions.create(params={"customer": customer.id,  # type: ignore[typeddict-item]
                                                "items": [{"price_data": {**PRICE, "unit_amount": amount}}]})
        return {"customer": customer.id, "invoice": str(sub.latest_invoice)}


def wait(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"not reached within {timeout}s: {what}")


@pytest.fixture(scope="module")
def site(database_url: str, redis_url: str, ray_session: None) -> Iterator[Site]:
    assert AXE.is_file(), "run scripts/test-deps.sh (scripts/test.sh does)"
    catcher: CatcherHandle = start_catcher(0, tempfile.mkdtemp(prefix="payrisk-mail-"))
    clock = start_sim_clock(T0)
    sim_settings = SimulatorSettings(seed=11, id_namespace=uuid.uuid4().hex, auto_deliver=False, start=T0,
                                     webhook_secret=SECRET)
    with SimulatorServer(sim_settings) as sim:
        settings = load_settings(environ={}, dotenv=None, database_url=database_url, redis_url=redis_url,
                                 smtp_url=catcher.smtp_url, mail_from="billing@example.com",
                                 stripe_webhook_secrets=(SECRET,), shards=2, stripe_api_key=sim.api_key,
                                 stripe_api_base=sim.url, sweep_interval_seconds=1.0, secret_keys=(MASTER,))
        system = ActorSystem(settings, clock="sim")
        system.start(run_loops=False)
        with ServerThread(create_app(settings)) as gateway:
            sim.sim.update_webhook_endpoint(url=f"{gateway.url}/webhooks/stripe")
            yield Site(gateway.url, sim, system, database_url, make_key(database_url, "default", ("admin",)),
                       make_key(database_url, "other", ("admin",)))
        system.stop()
    ray.kill(clock)
    catcher.stop()


@pytest.fixture(scope="module")
def population(site: Site) -> Site:
    """Soft declines (retried), a lost card (never retried), amounts in two sizes."""
    for name, card, amount in [("soft1", "pm_card_chargeDeclinedInsufficientFunds", 2500),
                               ("soft2", "pm_card_chargeDeclinedInsufficientFunds", 9900),
                               ("soft3", "pm_card_chargeDeclinedInsufficientFunds", 4000),
                               ("lost", "pm_card_chargeDeclinedLostCard", 5000)]:
        site.customers[name] = site.failing(card, amount)
    site.deliver()
    for ids in site.customers.values():
        wait(lambda ids=ids: site.case(ids["customer"], ids["invoice"])["state"] != "classifying", "classified")
    return site


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@dataclass
class Visit:
    """A signed-in browser that records console errors and uncaught exceptions of every page it shows."""

    context: BrowserContext
    page: Page
    errors: list[str]

    def open(self, url: str, shot: str) -> Page:
        self.page.goto(url)
        self.page.wait_for_load_state("networkidle")
        check_page(self.page, shot)
        return self.page


def check_page(page: Page, shot: str) -> None:
    """axe-core's WCAG 2 A/AA rules (labels, contrast, names, landmarks) find nothing; keep a screenshot."""
    page.evaluate(AXE.read_text())  # evaluated by the browser's debugger protocol: the page's CSP does not apply
    result = page.evaluate("axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}})")
    violations = [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{shot}.png"), full_page=True)
    assert violations == [], violations


def sign_in(browser: Browser, site: Site, key: str) -> Visit:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"{page.url}: {message.text}")

    page.on("console", console)
    page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
    page.goto(f"{site.gateway}/dashboard/login?next=/dashboard")
    page.fill("#api_key", key)
    page.click("#key-signin")
    page.wait_for_url(f"{site.gateway}/dashboard")
    return Visit(context, page, errors)


@pytest.fixture
def visit(browser: Browser, population: Site) -> Iterator[Visit]:
    v = sign_in(browser, population, population.key)
    yield v
    assert v.errors == []
    v.context.close()


# ------------------------------------------------------------------------------------------------------ tests


def test_a_page_without_a_session_redirects_to_sign_in_and_the_sign_in_page_is_accessible(
        browser: Browser, site: Site) -> None:
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{site.gateway}/dashboard/cases?state=retry_scheduled")
    assert page.url == f"{site.gateway}/dashboard/login?next=%2Fdashboard%2Fcases%3Fstate%3Dretry_scheduled"
    check_page(page, "login")
    page.fill("#api_key", "prk_00000000_not-a-real-key")
    page.click("#key-signin")
    assert "not valid" in page.locator("#login-error").inner_text()
    assert errors == [] or all("401" in e for e in errors)  # the refused form answers 401 (the browser logs it)
    context.close()


def test_the_overview_shows_the_same_figures_as_the_summary_api(visit: Visit, population: Site) -> None:
    page = visit.open(f"{population.gateway}/dashboard?{WINDOW}", "overview")
    summary = population.api(f"/api/analytics/summary?{WINDOW}")
    [usd] = [t for t in summary["totals"] if t["currency"] == "usd"]
    assert usd["cases"] == 4
    for metric in ("revenue_at_risk", "recovered_revenue", "recovery_rate", "retries_per_recovery",
                   "time_to_recover_median_seconds", "cases"):
        shown = page.locator(f"#{metric}-usd").get_attribute("data-value")
        assert shown == ("None" if usd[metric] is None else str(usd[metric])), metric
    assert page.locator("#revenue_at_risk-usd").inner_text() == f"{usd['revenue_at_risk'] / 100:,.2f} USD"
    reasons = page.locator("#by-reason tbody tr").all_inner_texts()
    assert len(reasons) == len(summary["by"]["reason"]) and any("insufficient_funds" in r for r in reasons)
    assert page.locator("#chart-usd canvas").count() == 1  # the bundled chart library drew the daily chart


def test_cases_filter_and_the_csv_export_has_exactly_the_filtered_rows(visit: Visit, population: Site) -> None:
    page = visit.open(f"{population.gateway}/dashboard/cases", "cases")
    page.select_option("#category", "SOFT_DECLINE")
    page.fill("#amount_min", "3000")
    page.click("#apply-filters")
    page.wait_for_url("**/dashboard/cases?*")
    api = population.api("/api/cases?category=SOFT_DECLINE&amount_min=3000")["data"]
    expected = {(r["customer_id"], r["invoice_id"]) for r in api}
    assert expected == {(population.customers[n]["customer"], population.customers[n]["invoice"])
                        for n in ("soft2", "soft3")}
    assert page.locator("tr.case-row").count() == len(expected)
    with page.expect_download() as download:
        page.click("#export-csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert {(r["customer_id"], r["invoice_id"]) for r in rows} == expected
    assert {r["category"] for r in rows} == {"SOFT_DECLINE"} and all(int(r["amount_due"]) >= 3000 for r in rows)


def test_retry_now_from_the_customer_page_charges_once_and_shows_the_attempt(visit: Visit,
                                                                            population: Site) -> None:
    ids = population.customers["soft1"]
    cases = visit.open(f"{population.gateway}/dashboard/cases?customer={ids['customer']}", "cases-filtered")
    cases.click(f"a[href='/dashboard/customers/{ids['customer']}']")
    page = visit.page
    page.wait_for_url(f"**/dashboard/customers/{ids['customer']}")
    check_page(page, "customer")
    explanation = page.locator(f"#case-{ids['invoice']} .explanation").inner_text()
    assert explanation and explanation == population.case(ids["customer"], ids["invoice"])["explanation"]
    assert "Classified SOFT_DECLINE (insufficient_funds)" in page.locator("#story").inner_text()
    before = len(population.sim.sim.ledger_entries(ids["invoice"]))
    page.locator(f"#case-{ids['invoice']} button.action-retry_now").focus()  # the keyboard presses it
    page.keyboard.press("Enter")
    page.wait_for_selector("#action-done")
    assert "retry now: attempt 1 starts now" in page.locator("#action-done").inner_text()
    story = page.locator("#story").inner_text()
    assert "user:" in story and "asked: retry now — done" in story
    assert "Attempt 1 sent to the provider" in story and "Attempt 1 declined" in story
    charges = population.sim.sim.ledger_entries(ids["invoice"])
    assert len(charges) == before + 1  # exactly one charge, made with the attempt's idempotency key
    check_page(page, "customer-after-retry")
    # the same form submitted again (a double click) is the same request: decided once, nothing charged
    with psycopg.connect(population.database_url) as conn:
        audit = conn.execute("SELECT principal, after FROM audit_events WHERE action = 'case.retry_now'"
                             " AND target = %s", (f"{ids['customer']}/{ids['invoice']}",)).fetchall()
    assert len(audit) == 1 and audit[0][0].startswith("user:prk_") and audit[0][1]["outcome"].startswith("done")


def test_pause_and_resume_are_recorded_and_listed_on_the_incidents_page(visit: Visit, population: Site) -> None:
    ids = population.customers["soft2"]
    page = visit.open(f"{population.gateway}/dashboard/customers/{ids['customer']}", "customer-soft2")
    page.click(f"#case-{ids['invoice']} button.action-pause")
    page.wait_for_selector("#action-done")
    assert population.case(ids["customer"], ids["invoice"])["paused"] is True
    page.click(f"#case-{ids['invoice']} button.action-retry_now")
    assert "paused" in page.locator("#action-refused").inner_text()
    page.click(f"#case-{ids['invoice']} button.action-resume")
    page.wait_for_selector("#action-done")
    assert population.case(ids["customer"], ids["invoice"])["paused"] is False
    incidents = visit.open(f"{population.gateway}/dashboard/incidents", "incidents")
    listed = incidents.locator("#operator-pauses tbody").inner_text()
    assert listed.count(ids["invoice"]) == 2 and "pause" in listed and "resume" in listed


def test_a_quarantined_delivery_is_replayed_from_the_deliveries_page(visit: Visit, population: Site) -> None:
    customer = f"cus_q{uuid.uuid4().hex[:8]}"
    body = envelope(f"evt_q_{customer}", "invoice.payment_failed", invoice(f"in_{customer}", customer, pi=None))
    with psycopg.connect(population.database_url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO deliveries (tenant_id, provider, provider_event_id, event_type, body, headers, status,"
            " status_reason, received_at) VALUES ('default', 'stripe', %s, 'invoice.payment_failed', %s, '{}',"
            " 'quarantined', 'old parser bug', now()) RETURNING delivery_id", (f"evt_q_{customer}", body)).fetchone()
    assert row is not None
    page = visit.open(f"{population.gateway}/dashboard/deliveries", "deliveries")
    assert "old parser bug" in page.locator(f"#delivery-{row[0]}").inner_text()
    page.click(f"#delivery-{row[0]} button.replay")
    assert "replayed" in page.locator("#replay-result").inner_text()

    def applied() -> bool:
        with psycopg.connect(population.database_url) as conn:
            status = conn.execute("SELECT status FROM deliveries WHERE delivery_id = %s", (row[0],)).fetchone()
        return status is not None and status[0] == "applied"

    wait(applied, "the replayed delivery applied")
    with psycopg.connect(population.database_url) as conn:
        failed = conn.execute("SELECT count(*) FROM events WHERE stream_id = %s AND event_type = 'PaymentFailed'",
                              (customer,)).fetchone()
    assert failed == (1,)


def test_strategies_and_the_api_reference_render(visit: Visit, population: Site) -> None:
    ids = population.customers["lost"]
    page = visit.open(f"{population.gateway}/dashboard/strategies?customer={ids['customer']}", "strategies")
    assert "standard" in page.locator("#templates").inner_text()
    assert page.locator("#explained").inner_text().startswith(f"customer {ids['customer']}: segment")
    docs = visit.page
    docs.goto(f"{population.gateway}/docs")
    docs.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
    assert "payrisk" in docs.locator(".swagger-ui .info .title").inner_text().lower()
    ARTIFACTS.mkdir(exist_ok=True)
    docs.screenshot(path=str(ARTIFACTS / "dashboard-docs.png"))


def test_another_tenants_customer_is_not_found(browser: Browser, population: Site) -> None:
    v = sign_in(browser, population, population.other_key)
    ids = population.customers["soft3"]
    response = v.page.goto(f"{population.gateway}/dashboard/customers/{ids['customer']}")
    assert response is not None and response.status == 404
    assert "no customer" in v.page.locator("#error-detail").inner_text()
    check_page(v.page, "not-found")
    assert [e for e in v.errors if "404" not in e] == []  # the browser logs the 404 itself; nothing else
    # and an action on it changes nothing
    posted = v.context.request.post(
        f"{population.gateway}/dashboard/customers/{ids['customer']}/cases/{ids['invoice']}/close",
        form={"csrf_token": "x"})
    assert posted.status == 403  # a session without its CSRF token may change nothing
    assert population.case(ids["customer"], ids["invoice"])["state"] != "closed"
    v.context.close()


def test_pages_accept_an_api_key_as_a_bearer_token(population: Site) -> None:
    response = httpx.get(f"{population.gateway}/dashboard/cases.csv?category=HARD_DECLINE",
                         headers={"Authorization": f"Bearer {population.key}"}, timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["customer_id"] for r in rows] == [population.customers["lost"]["customer"]]
