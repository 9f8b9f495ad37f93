"""Fuzz the whole OpenAPI surface (docs/openapi.yaml) with schemathesis over real HTTP, real PostgreSQL and Redis
(issue 16): valid and invalid requests alike never get a 500 (a 503 is allowed: Ray is not running here, and the
gateway says so), every error is a problem document, and a rejected request changes nothing stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from gateway.app import create_app
from settings import load_settings
from tests.support.principals import bearer
from tests.support.servers import ServerThread
from tests.support.stripe_events import SECRET

ROOT = Path(__file__).resolve().parents[2]
AUTH: dict[str, str] = {}
schema = schemathesis.openapi.from_path(str(ROOT / "docs" / "openapi.yaml"))
STATE_SQL = ("SELECT (SELECT count(*) FROM deliveries), (SELECT count(*) FROM events),"
             " (SELECT count(*) FROM checkpoints), (SELECT count(*) FROM outbox),"
             " (SELECT coalesce(sum(revision), 0) FROM classification_overrides)")


@pytest.fixture(scope="module")
def base_url(database_url: str, redis_url: str, platform_key: str) -> Iterator[str]:
    AUTH.update(bearer(platform_key))  # a platform admin: the fuzz reaches every route, not only the 401
    app_settings = load_settings(environ={}, dotenv=None, database_url=database_url, redis_url=redis_url,
                                 stripe_webhook_secrets=(SECRET,), sweep_interval_seconds=3600)
    with ServerThread(create_app(app_settings)) as server:
        yield server.url


def _state(database_url: str) -> tuple[int, ...]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(STATE_SQL).fetchone()
    assert row is not None
    return tuple(int(v) for v in row)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_to_the_api_gets_a_500_or_changes_state_when_rejected(
        case: schemathesis.Case, base_url: str, database_url: str) -> None:
    before = _state(database_url)
    response = case.call(base_url=base_url, timeout=30, headers=AUTH)
    assert response.status_code != 500, (case.method, case.formatted_path, response.text[:300])
    assert response.status_code < 500 or response.status_code == 503, response.text[:300]
    if response.status_code >= 400 and case.formatted_path != "/readyz":
        assert response.headers["content-type"][0].startswith("application/problem+json"), response.headers
        assert response.json().get("detail"), response.text[:300]
        assert _state(database_url) == before, (case.method, case.formatted_path, response.status_code)
