"""Cases and analytics over real HTTP and PostgreSQL, on a small scenario whose numbers are computed by hand;
the monitor's detection pass against the same database (spike alerts and incidents recorded once)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from actors.domain.case import empty_state, evolve
from actors.domain.spikes import SpikeConfig
from actors.monitor import detect_and_record, open_incidents
from actors.notifier.messages import AlertPayload
from gateway.app import create_app
from settings import load_settings
from store import Database
from tests.support.principals import bearer
from tests.support.servers import ServerThread

#: the operator's API key (set by the gateway fixture): every API call carries it
AUTH: dict[str, str] = {}

DAY1 = datetime(2025, 3, 1, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Case:
    customer: str
    invoice: str
    amount: int
    currency: str
    failed_at: datetime
    category: str = "SOFT_DECLINE"
    reason: str = "insufficient_funds"
    segment: str = "smb"
    provider: str = "stripe"
    outcome: str = "open"  # open | recovered | exhausted
    attempts: int = 0  # retry attempts made; for a recovered case the last one succeeded
    recovered_after: timedelta = timedelta(0)


def case_events(c: Case, delivery_id: int) -> list[tuple[str, dict[str, Any]]]:
    """The recorded events of one case, in the shapes the recovery core writes."""
    strategy = {"id": "std", "version": 1, "segment": c.segment, "final_action": "leave_past_due"}
    classified = (
        "FailureClassified",
        {
            "invoice_id": c.invoice,
            "card": {},
            "classification": {"category": c.category, "reason": c.reason, "retryable": c.outcome != "exhausted"},
        },
    )
    found: list[tuple[str, dict[str, Any]]] = [
        ("PaymentFailed", {"invoice_id": c.invoice, "at": c.failed_at.isoformat(), "amount_due": c.amount,
                           "currency": c.currency, "delivery_id": delivery_id}), classified]  # fmt: skip
    plan = {"invoice_id": c.invoice, "max_attempts": 4, "explanation": "why", "strategy": strategy}
    if c.outcome == "exhausted":
        return [*found, ("Exhausted", {**plan, "action": "final", "at": None, "attempt_no": 0})]
    for n in range(1, c.attempts + 1):
        key = f"{c.invoice}:{n}"
        at = (c.failed_at + c.recovered_after * n / c.attempts).isoformat()
        found += [
            ("RetryScheduled", {**plan, "action": "retry", "at": at, "attempt_no": n, "retryable": True}),
            ("AttemptStarted", {"invoice_id": c.invoice, "attempt_no": n, "idempotency_key": key, "at": at}),
        ]
        if n < c.attempts or c.outcome != "recovered":
            found += [("AttemptFailed", {"invoice_id": c.invoice, "attempt_no": n, "idempotency_key": key}),
                      classified]  # fmt: skip
    if c.outcome == "recovered":
        found += [
            ("AttemptSucceeded", {"invoice_id": c.invoice, "attempt_no": c.attempts, "idempotency_key": "k"}),
            (
                "InvoiceRecovered",
                {
                    "invoice_id": c.invoice,
                    "via": "retry",
                    "amount": c.amount,
                    "currency": c.currency,
                    "at": (c.failed_at + c.recovered_after).isoformat(),
                },
            ),
        ]
    elif c.attempts == 0:
        found.append(("RetryScheduled", {**plan, "action": "retry", "at": c.failed_at.isoformat(), "attempt_no": 1,
                                         "retryable": True}))  # fmt: skip
    return found


def new_tenant(database_url: str) -> str:
    tenant = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, %s)", (tenant, tenant))
    return tenant


def seed(database_url: str, tenant: str, cases: list[Case]) -> None:
    """Each customer's events (a delivery per failure) and the checkpoint their fold produces."""
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        for name in sorted({c.customer for c in cases}):
            mine = [c for c in cases if c.customer == name]
            # the stream of a customer of another provider than Stripe is provider-scoped (actors/domain/streams.py)
            customer = name if mine[0].provider == "stripe" else f"{mine[0].provider}:{name}"
            state, recorded = empty_state(tenant, customer), []
            for c in mine:
                row = conn.execute(
                    "INSERT INTO deliveries (tenant_id, provider, provider_event_id, event_type, customer_id, body,"
                    " headers) VALUES (%s, %s, %s, 'invoice.payment_failed', %s, %s, '{}') RETURNING delivery_id",
                    (tenant, c.provider, f"evt_{uuid.uuid4().hex}", customer, b"{}"),
                ).fetchone()
                assert row is not None
                recorded += case_events(c, row[0])
            for version, (event_type, payload) in enumerate(recorded, start=1):
                state = evolve(state, event_type, payload)
                conn.execute(
                    "INSERT INTO events (tenant_id, stream_id, version, event_type, payload)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (tenant, customer, version, event_type, Jsonb(payload)),
                )
            conn.execute(
                "INSERT INTO checkpoints (tenant_id, stream_id, version, state) VALUES (%s, %s, %s, %s)",
                (tenant, customer, len(recorded), Jsonb(state)),
            )


SCENARIO = [
    Case("c1", "in_1", 1000, "usd", DAY1 + 10 * HOUR, outcome="recovered", attempts=2, recovered_after=2 * HOUR),
    Case("c2", "in_2", 2000, "usd", DAY1 + 11 * HOUR),
    Case("c3", "in_3", 3000, "usd", DAY2 + 9 * HOUR, category="HARD_DECLINE", reason="lost_or_stolen",
         segment="enterprise", outcome="exhausted"),
    Case("c4", "in_4", 5000, "usd", DAY2 + 10 * HOUR, segment="enterprise", outcome="recovered", attempts=1,
         recovered_after=6 * HOUR),
    Case("c5", "in_5", 4000, "eur", DAY1 + 8 * HOUR, category="RATE_LIMITED", reason="rate_limit",
         provider="adyen", outcome="recovered", attempts=1, recovered_after=HOUR),
    Case("c6", "in_6", 7000, "usd", DAY1 - timedelta(days=9)),  # before the window
]  # fmt: skip
WINDOW = {"from": "2025-03-01", "to": "2025-03-03"}


@pytest.fixture(scope="module")
def gateway(database_url: str, redis_url: str, platform_key: str) -> Iterator[str]:
    AUTH.update(bearer(platform_key))  # each module's tenant is its own: a platform admin reads them (`?tenant=`)
    settings = load_settings(environ={}, dotenv=None, database_url=database_url, redis_url=redis_url,
                             sweep_interval_seconds=3600)  # fmt: skip
    with ServerThread(create_app(settings)) as server:
        yield server.url


@pytest.fixture(scope="module")
def tenant(database_url: str) -> str:
    tenant = new_tenant(database_url)
    seed(database_url, tenant, SCENARIO)
    other = new_tenant(database_url)  # same customer and invoice ids, in the window: must never leak
    seed(database_url, other, [Case("c1", "in_1", 99_999, "usd", DAY1 + HOUR, outcome="recovered", attempts=1,
                                    recovered_after=HOUR), Case("c9", "in_9", 55_555, "usd", DAY1)])  # fmt: skip
    return tenant


def get(url: str, path: str, **params: str) -> httpx.Response:
    return httpx.get(url + path, params=params, headers=AUTH, timeout=10)


def by_key(rows: list[dict[str, Any]], dimension: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r[dimension], r["currency"]): r for r in rows}


def test_summary_totals_equal_the_hand_computed_figures_per_currency(gateway: str, tenant: str) -> None:
    body = get(gateway, "/api/analytics/summary", tenant=tenant, **WINDOW).json()
    usd, eur = ({t["currency"]: t for t in body["totals"]}[c] for c in ("usd", "eur"))
    assert {k: usd[k] for k in ("cases", "failed_amount", "open_cases", "revenue_at_risk", "recovered_cases",
                                "recovered_revenue", "lost_cases", "lost_amount", "retries")} == {
        "cases": 4, "failed_amount": 11000, "open_cases": 1, "revenue_at_risk": 2000, "recovered_cases": 2,
        "recovered_revenue": 6000, "lost_cases": 1, "lost_amount": 3000, "retries": 3}  # fmt: skip
    assert usd["recovery_rate"] == 0.5 and usd["amount_recovery_rate"] == 0.5455
    assert usd["retries_per_recovery"] == 1.5
    assert usd["time_to_recover_median_seconds"] == 14400.0  # 2 h and 6 h
    assert usd["time_to_recover_p90_seconds"] == 20160.0  # 7200 + 0.9 × 14400, interpolated
    assert (eur["cases"], eur["recovered_revenue"], eur["recovery_rate"], eur["retries_per_recovery"]) == (
        1, 4000, 1.0, 1.0)  # fmt: skip
    assert eur["time_to_recover_median_seconds"] == eur["time_to_recover_p90_seconds"] == 3600.0
    assert len(body["totals"]) == 2 and body["from"].startswith("2025-03-01")


def test_summary_breaks_down_by_category_reason_segment_strategy_and_provider(gateway: str, tenant: str) -> None:
    by = get(gateway, "/api/analytics/summary", tenant=tenant, **WINDOW).json()["by"]
    category = by_key(by["category"], "category")
    assert set(category) == {("SOFT_DECLINE", "usd"), ("HARD_DECLINE", "usd"), ("RATE_LIMITED", "eur")}
    soft = category[("SOFT_DECLINE", "usd")]
    assert (soft["cases"], soft["failed_amount"], soft["recovered_revenue"], soft["retries"]) == (3, 8000, 6000, 3)
    assert (category[("HARD_DECLINE", "usd")]["lost_amount"], category[("HARD_DECLINE", "usd")]["recovery_rate"]) == (
        3000,
        0.0,
    )
    reason = by_key(by["reason"], "reason")
    assert reason[("insufficient_funds", "usd")]["cases"] == 3 and reason[("lost_or_stolen", "usd")]["cases"] == 1
    segment = by_key(by["segment"], "segment")
    assert (segment[("smb", "usd")]["recovered_revenue"], segment[("enterprise", "usd")]["recovered_revenue"]) == (
        1000, 5000)  # fmt: skip
    assert segment[("smb", "eur")]["cases"] == 1
    assert {k: r["cases"] for k, r in by_key(by["strategy"], "strategy").items()} == {
        ("std@1", "usd"): 4,
        ("std@1", "eur"): 1,
    }
    provider = by_key(by["provider"], "provider")
    assert set(provider) == {("stripe", "usd"), ("adyen", "eur")} and provider[("stripe", "usd")]["cases"] == 4


def test_daily_splits_the_cohort_and_the_activity_by_utc_day(gateway: str, tenant: str) -> None:
    days = get(gateway, "/api/analytics/daily", tenant=tenant, **WINDOW).json()["days"]
    table = {(d["day"], d["currency"]): d for d in days}
    assert sorted(table) == [("2025-03-01", "eur"), ("2025-03-01", "usd"), ("2025-03-02", "usd")]
    first, second = table[("2025-03-01", "usd")], table[("2025-03-02", "usd")]
    assert (first["cohort"]["cases"], first["cohort"]["revenue_at_risk"], first["cohort"]["recovered_revenue"]) == (
        2, 2000, 1000)  # fmt: skip
    assert first["activity"] == {"failures": 2, "failed_amount": 3000, "recoveries": 1, "recovered_amount": 1000}
    assert (second["cohort"]["cases"], second["cohort"]["lost_amount"]) == (2, 3000)
    assert second["activity"] == {"failures": 2, "failed_amount": 8000, "recoveries": 1, "recovered_amount": 5000}
    assert sum(d["cohort"]["cases"] for d in days if d["currency"] == "usd") == 4  # the summary's usd total


def test_cases_are_listed_one_row_per_invoice_in_first_failure_order(gateway: str, tenant: str) -> None:
    rows = get(gateway, "/api/cases", tenant=tenant).json()["data"]
    assert [r["invoice_id"] for r in rows] == ["in_6", "in_5", "in_1", "in_2", "in_3", "in_4"]
    first = next(r for r in rows if r["invoice_id"] == "in_1")
    assert (
        first["customer_id"],
        first["state"],
        first["amount_due"],
        first["attempts_made"],
        first["provider"],
        first["strategy"],
        first["segment"],
    ) == ("c1", "recovered", 1000, 2, "stripe", "std@1", "smb")


@pytest.mark.parametrize(
    ("params", "invoices"),
    [({"state": "recovered"}, ["in_5", "in_1", "in_4"]), ({"category": "HARD_DECLINE"}, ["in_3"]),
     ({"provider": "adyen"}, ["in_5"]), ({"segment": "enterprise"}, ["in_3", "in_4"]),
     ({"strategy": "std"}, ["in_6", "in_5", "in_1", "in_2", "in_3", "in_4"]), ({"strategy": "std@2"}, []),
     ({"reason": "rate_limit"}, ["in_5"]), ({"from": "2025-03-02"}, ["in_3", "in_4"]),
     ({"to": "2025-03-01T10:00:00Z"}, ["in_6", "in_5"]), ({"state": "retry_scheduled", "to": "2025-03-01"}, ["in_6"]),
     ({"customer": "c2"}, ["in_2"])],
)  # fmt: skip
def test_case_filters_select_the_expected_invoices(gateway: str, tenant: str, params: dict[str, str],
                                                   invoices: list[str]) -> None:  # fmt: skip
    response = get(gateway, "/api/cases", tenant=tenant, **params)
    assert response.status_code == 200, response.text
    assert [r["invoice_id"] for r in response.json()["data"]] == invoices


def test_case_pages_follow_the_cursor_without_gaps_or_repeats(gateway: str, tenant: str) -> None:
    seen: list[str] = []
    after: str | None = None
    for _ in range(5):
        params = {"tenant": tenant, "limit": "4", **({"after": after} if after else {})}
        body = get(gateway, "/api/cases", **params).json()
        seen += [r["invoice_id"] for r in body["data"]]
        after = body["next_after"]
        if after is None:
            break
    assert seen == ["in_6", "in_5", "in_1", "in_2", "in_3", "in_4"]


def test_another_tenants_cases_and_amounts_never_appear(gateway: str, tenant: str) -> None:
    rows = get(gateway, "/api/cases", tenant=tenant, customer="c1").json()["data"]
    assert [r["amount_due"] for r in rows] == [1000]
    summary = get(gateway, "/api/analytics/summary", tenant=tenant, **WINDOW).json()
    assert 99_999 not in [t["recovered_revenue"] for t in summary["totals"]]
    assert all(r["customer_id"] != "c9" for r in get(gateway, "/api/cases", tenant=tenant).json()["data"])


def test_the_default_tenant_sees_none_of_the_scenario(gateway: str, tenant: str) -> None:
    rows = get(gateway, "/api/cases", customer="c1").json()["data"]
    assert rows == []


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [("/api/analytics/summary", {"from": "last week"}, "from"), ("/api/analytics/daily", {"to": "2025-02-30"}, "to"),
     ("/api/analytics/summary", {"from": "2025-03-02", "to": "2025-03-01"}, "from"),
     ("/api/analytics/summary", {"currency": "usd"}, "currency"), ("/api/cases", {"state": "lost"}, "state"),
     ("/api/cases", {"limit": "0"}, "limit"), ("/api/cases", {"after": "%%%"}, "after"),
     ("/api/cases", {"category": "soft_decline"}, "category")],
)  # fmt: skip
def test_a_bad_parameter_is_a_400_problem_naming_it(gateway: str, tenant: str, path: str, params: dict[str, str],
                                                    parameter: str) -> None:  # fmt: skip
    response = get(gateway, path, tenant=tenant, **params)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["parameter"] == parameter and problem["type"].endswith("/invalid-parameter")
    assert parameter in problem["detail"]


def test_an_unknown_tenant_is_a_404_problem(gateway: str) -> None:
    response = get(gateway, "/api/analytics/summary", tenant="no_such_tenant")
    assert response.status_code == 404 and response.json()["parameter"] == "tenant"


# ---------------------------------------------------------------------------------------------- the monitor

T0 = datetime(2031, 1, 6, 12, 0, tzinfo=UTC)  # a 5-minute bucket boundary, far from other tests' events


def burst(prefix: str, n: int, at: datetime, category: str, reason: str, provider: str = "stripe") -> list[Case]:
    return [Case(f"{prefix}{i}", f"in_{prefix}{i}", 1000, "usd", at + timedelta(seconds=10 * i), category=category,
                 reason=reason, provider=provider) for i in range(n)]  # fmt: skip


def outbox_alerts(database_url: str, tenant: str) -> list[tuple[str, dict[str, Any]]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT idempotency_key, payload FROM outbox WHERE tenant_id = %s AND topic = 'alert'"
                            " ORDER BY outbox_id", (tenant,)).fetchall()  # fmt: skip
    return [(r[0], r[1]) for r in rows]


def monitor_events(database_url: str, tenant: str) -> list[tuple[str, str]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT stream_id, event_type FROM events WHERE tenant_id = %s"
                            " AND stream_id LIKE 'monitor:%%' ORDER BY position", (tenant,)).fetchall()  # fmt: skip
    return [(r[0], r[1]) for r in rows]


async def test_a_config_error_burst_opens_one_incident_and_quiet_resolves_it(database_url: str,
                                                                            db: Database) -> None:  # fmt: skip
    tenant = new_tenant(database_url)
    seed(database_url, tenant, burst("cfg", 6, T0, "CONFIG_ERROR", "invalid_api_key"))
    config = SpikeConfig()
    now = T0 + timedelta(minutes=4)
    assert await detect_and_record(db, now, config, tenant) == {"spikes": 0, "opened": 1, "resolved": 0}
    assert await detect_and_record(db, now, config, tenant) == {"spikes": 0, "opened": 0, "resolved": 0}
    async with db.connection() as conn:
        [incident] = await open_incidents(conn, tenant)
    assert incident["provider"] == "stripe" and incident["categories"] == ["CONFIG_ERROR"]
    [(key, alert)] = outbox_alerts(database_url, tenant)
    assert key == f"alert:{tenant}:incident:{incident['incident_id']}:opened"
    assert AlertPayload.model_validate(alert).severity == "critical"  # the notifier accepts it as is
    later = T0 + timedelta(minutes=25)
    assert await detect_and_record(db, later, config, tenant) == {"spikes": 0, "opened": 0, "resolved": 1}
    async with db.connection() as conn:
        assert await open_incidents(conn, tenant) == []
    assert monitor_events(database_url, tenant) == [("monitor:stripe", "IncidentOpened"),
                                                    ("monitor:stripe", "IncidentResolved")]  # fmt: skip
    assert AlertPayload.model_validate(outbox_alerts(database_url, tenant)[1][1]).severity == "info"


async def test_a_soft_decline_burst_raises_one_spike_alert_and_steady_failures_none(database_url: str,
                                                                                   db: Database) -> None:  # fmt: skip
    tenant = new_tenant(database_url)
    steady = [c for b in range(12) for c in burst(f"s{b}_", 2, T0 - timedelta(minutes=5 * (12 - b)), "SOFT_DECLINE",
                                                  "insufficient_funds", provider="adyen")]  # fmt: skip
    seed(database_url, tenant, steady)
    config = SpikeConfig()
    assert await detect_and_record(db, T0 + timedelta(minutes=4), config, tenant) == {
        "spikes": 0, "opened": 0, "resolved": 0}  # fmt: skip
    seed(database_url, tenant, burst("b", 15, T0, "SOFT_DECLINE", "insufficient_funds", provider="adyen"))
    assert (await detect_and_record(db, T0 + timedelta(minutes=4), config, tenant))["spikes"] == 1
    assert (await detect_and_record(db, T0 + timedelta(minutes=6), config, tenant))["spikes"] == 0  # same bucket
    [(key, alert)] = outbox_alerts(database_url, tenant)
    assert key == f"alert:{tenant}:spike:adyen:SOFT_DECLINE:{T0.isoformat()}"
    assert AlertPayload.model_validate(alert).fields["count"] == "15"
    assert monitor_events(database_url, tenant) == [("monitor:adyen", "SpikeDetected")]


def test_recoveries_are_credited_to_the_card_update_that_preceded_them(database_url: str) -> None:
    from store.analytics import SUMMARY_SQL

    tenant = f"credit{uuid.uuid4().hex[:6]}"
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, %s)", (tenant, tenant))
        for customer, credit, via in (("c1", "card_update", "retry"), ("c2", None, "retry"), ("c3", None, "provider")):
            case = {"state": "recovered", "amount_due": 1000, "currency": "usd", "recovered_amount": 1000,
                    "first_failed_at": "2026-03-01T00:00:00+00:00", "recovered_at": "2026-03-02T00:00:00+00:00",
                    "recovered_via": via, "recovered_credit": credit}
            conn.execute("INSERT INTO checkpoints (tenant_id, stream_id, version, state) VALUES (%s, %s, 1, %s)",
                         (tenant, customer, Jsonb({"cases": {f"in_{customer}": case}})))
        rows = conn.execute(SUMMARY_SQL, {"tenant": tenant, "start": None, "end": None, "open": ["retry_scheduled"],
                                          "lost": ["exhausted"]}).fetchall()
    credited = {r[2]: r[3] for r in rows if r[1] == "recovered_by"}
    assert credited == {"card_update": 1, "retry": 1, "provider": 1}


def test_the_holdout_endpoint_compares_the_policy_with_its_holdout_arm(gateway: str, database_url: str) -> None:
    tenant = new_tenant(database_url)
    treated = [Case(f"t{n}", f"in_t{n}", 1000, "usd", DAY1 + n * HOUR, outcome="recovered" if n % 2 else "open",
                    attempts=1, recovered_after=HOUR) for n in range(8)]  # 4 of 8 recovered
    held = [Case(f"h{n}", f"in_h{n}", 1000, "usd", DAY1 + n * HOUR, segment="holdout",
                 outcome="recovered" if n == 0 else "open", attempts=1, recovered_after=HOUR)
            for n in range(4)]  # 1 of 4 recovered
    seed(database_url, tenant, [*treated, *held, Case("e1", "in_e1", 500, "eur", DAY1)])
    answer = get(gateway, "/api/analytics/holdout", tenant=tenant, **WINDOW)
    assert answer.status_code == 200, answer.text
    usd, eur = answer.json()["currencies"][1], answer.json()["currencies"][0]
    assert (usd["currency"], usd["treatment"]["rate"], usd["holdout"]["rate"]) == ("usd", 0.5, 0.25)
    assert usd["uplift"] == 0.25 and usd["incremental_revenue"] == 2000  # 0.25 × 8,000 at risk in the policy's arm
    low, high = usd["uplift_ci95"]
    assert low < 0.25 < high
    assert eur["uplift"] is None  # no holdout case in eur: no comparison is made up
    page = get(gateway, "/dashboard", tenant=tenant, **WINDOW)
    assert page.status_code == 200, page.text[:300]
    assert 'id="holdout-incremental-usd"' in page.text
    assert "20.00" in page.text.split('id="holdout-incremental-usd"')[1][:40]
    assert 'id="holdout-incremental-eur"' not in page.text
