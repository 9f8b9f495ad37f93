"""The gateway's /metrics over real HTTP with real PostgreSQL: gauges read from the database on a timer equal the
database once writes stop (whoever wrote: here checkpoints, as a customer's home writes them, through the
case_facts trigger), and every answer is measured per route template and status."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg.types.json import Jsonb

from tests.integration.test_gateway_hardening import Gateway, _failure, _post, _settings
from tests.support.principals import bearer

OPEN = ("classifying", "retry_scheduled", "retrying", "awaiting_customer", "escalated")
STATES = (*OPEN, "recovered", "exhausted", "closed")
#: the oracle: open cases straight from the checkpoints' JSON, not from the read model the gauges use
ORACLE = """
SELECT count(*), count(DISTINCT cp.stream_id), coalesce(sum((c.value->>'amount_due')::bigint), 0)
FROM checkpoints cp CROSS JOIN LATERAL jsonb_each(cp.state->'cases') c
WHERE cp.tenant_id = %s AND c.value->>'first_failed_at' IS NOT NULL AND c.value->>'state' = ANY(%s)
"""


@pytest.fixture(scope="module")
def gateway(database_url: str, redis_url: str, platform_key: str) -> Iterator[tuple[str, dict[str, str]]]:
    with Gateway(_settings(database_url, redis_url, metrics_interval_seconds=0.2)) as gw:
        yield gw.url, bearer(platform_key)


def scrape(gateway: tuple[str, dict[str, str]]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    url, auth = gateway
    answer = httpx.get(url + "/metrics", headers=auth, timeout=30)
    assert answer.status_code == 200, answer.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def sample(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def write_checkpoints(conn: psycopg.Connection[Any], tenant: str, rng: random.Random, version: int) -> None:
    for n in range(30):
        cases = {}
        for i in range(rng.randrange(0, 4)):
            state = rng.choice(STATES)
            cases[f"in_{n}_{i}"] = {"invoice_id": f"in_{n}_{i}", "state": state, "currency": "usd",
                                    "amount_due": rng.randrange(100, 50_000), "attempts_made": 1,
                                    "first_failed_at": "2026-11-20T09:00:00+00:00"}
        conn.execute("INSERT INTO checkpoints (tenant_id, stream_id, version, state) VALUES (%s, %s, %s, %s)"
                     " ON CONFLICT (tenant_id, stream_id) DO UPDATE SET version = excluded.version,"
                     " state = excluded.state", (tenant, f"cus_{n}", version, Jsonb({"cases": cases})))


def wait_for_equal(gateway: tuple[str, dict[str, str]], tenant: str, expected: tuple[int, int, int]
                   ) -> tuple[float | None, ...]:
    deadline = time.monotonic() + 30
    while True:
        samples = scrape(gateway)
        seen = (sample(samples, "payrisk_open_cases", tenant=tenant),
                sample(samples, "payrisk_active_customers", tenant=tenant),
                sample(samples, "payrisk_revenue_at_risk", tenant=tenant, currency="usd"))
        if seen == tuple(float(v) for v in expected) or time.monotonic() > deadline:
            return seen
        time.sleep(0.1)


def test_the_case_gauges_equal_the_database_once_writes_stop(gateway: tuple[str, dict[str, str]],
                                                              database_url: str) -> None:
    rng = random.Random(20)
    tenant = f"gauge{uuid.uuid4().hex[:6]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, %s)", (tenant, tenant))
        for version in (1, 2, 3):  # the state changes while the timer keeps refreshing
            write_checkpoints(conn, tenant, rng, version)
            time.sleep(0.15)
        expected = conn.execute(ORACLE, (tenant, list(OPEN))).fetchone()
        assert expected is not None and expected[0] > 0
        assert wait_for_equal(gateway, tenant, expected) == tuple(float(v) for v in expected)
        # every open case settles: the gauges follow down to 0 (not left at their last value, not dropped)
        conn.execute("UPDATE checkpoints SET state = jsonb_set(state, '{cases}', coalesce((SELECT"
                     " jsonb_object_agg(c.key, jsonb_set(c.value, '{state}', '\"recovered\"'))"
                     " FROM jsonb_each(state->'cases') c), '{}')) WHERE tenant_id = %s", (tenant,))
        assert conn.execute(ORACLE, (tenant, list(OPEN))).fetchone() == (0, 0, 0)
        assert wait_for_equal(gateway, tenant, (0, 0, 0)) == (0.0, 0.0, 0.0)


def test_the_backlog_and_outbox_gauges_equal_the_database(gateway: tuple[str, dict[str, str]],
                                                          database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO outbox (tenant_id, topic, idempotency_key, payload) VALUES"
                     " ('default', 'email', %s, '{}')", (f"gauge-{uuid.uuid4().hex}",))
        deadline = time.monotonic() + 30
        while True:
            depth = conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL AND dead_at IS NULL"
                                 " AND topic = 'email'").fetchone()
            waiting = conn.execute("SELECT count(*) FROM deliveries WHERE status = 'received'").fetchone()
            samples = scrape(gateway)
            seen = (sample(samples, "payrisk_outbox_depth", topic="email"),
                    sample(samples, "payrisk_delivery_backlog", status="received"))
            assert depth is not None and waiting is not None
            if seen == (float(depth[0]), float(waiting[0])) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert seen == (float(depth[0]), float(waiting[0]))
        assert depth[0] >= 1


def test_every_answer_is_measured_per_route_template_and_status(gateway: tuple[str, dict[str, str]]) -> None:
    url, _ = gateway
    _, body = _failure()
    assert _post(url, body).status_code == 200
    trace_id = uuid.uuid4().hex
    missing = httpx.get(url + f"/no/such/{uuid.uuid4().hex}", timeout=30,
                        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    assert missing.headers["x-request-id"] == trace_id
    refused = httpx.get(url + "/api/cases", timeout=30)
    assert refused.status_code == 401
    samples = scrape(gateway)
    ok = sample(samples, "payrisk_http_request_duration_seconds_count", method="POST", route="/webhooks/stripe",
                status="200")
    assert ok is not None and ok >= 1
    assert (sample(samples, "payrisk_http_requests_total", method="GET", route="unmatched", status=str(
        missing.status_code)) or 0) >= 1
    assert (sample(samples, "payrisk_http_requests_total", method="GET", route="/api/cases", status="401") or 0) >= 1
    routes = {value for name, labels in samples if name.startswith("payrisk_http") for key, value in labels
              if key == "route"}
    assert not [route for route in routes if route.startswith("/no/")]  # raw paths never become labels
