"""The Stripe webhook endpoint over real HTTP with real PostgreSQL and Redis (I1, I2, I9)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
import redis

from gateway.app import create_app
from settings import load_settings
from tests.support.principals import bearer
from tests.support.servers import ServerThread
from tests.support.stripe_events import SECRET, envelope, invoice, sign

#: the operator's API key (set by the gateway fixture): every API call carries it
AUTH: dict[str, str] = {}


@pytest.fixture(scope="module")
def gateway(database_url: str, redis_url: str, admin_key: str) -> Iterator[str]:
    AUTH.update(bearer(admin_key))
    settings = load_settings(environ={}, dotenv=None, database_url=database_url, redis_url=redis_url,
                             stripe_webhook_secrets=(SECRET, "whsec_old_secret"), sweep_interval_seconds=3600)
    with ServerThread(create_app(settings)) as server:
        yield server.url


def count(database_url: str, event_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM deliveries WHERE provider_event_id = %s", (event_id,)).fetchone()
    return int(row[0]) if row else 0


def status_of(database_url: str, event_id: str) -> tuple[str, str | None]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT status, status_reason FROM deliveries WHERE provider_event_id = %s",
                           (event_id,)).fetchone()
    assert row is not None
    return row[0], row[1]


def post(url: str, body: bytes, signature: str | None, path: str = "/webhooks/stripe") -> httpx.Response:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["stripe-signature"] = signature
    return httpx.post(url + path, content=body, headers=headers, timeout=10)


def new_failure() -> tuple[str, bytes]:
    event_id = f"evt_{uuid.uuid4().hex[:12]}"
    return event_id, envelope(event_id, "invoice.payment_failed", invoice(f"in_{event_id}", "cus_gw"))


def test_a_signed_failure_is_stored_once_before_the_answer(gateway: str, database_url: str) -> None:
    event_id, body = new_failure()
    response = post(gateway, body, sign(body))
    assert response.status_code == 200 and response.json()["duplicate"] is False
    assert count(database_url, event_id) == 1
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT body FROM deliveries WHERE provider_event_id = %s", (event_id,)).fetchone()
    assert stored is not None and bytes(stored[0]) == body


def test_a_sequential_duplicate_answers_200_and_changes_nothing(gateway: str, database_url: str) -> None:
    event_id, body = new_failure()
    first, second = post(gateway, body, sign(body)), post(gateway, body, sign(body))
    assert first.json()["duplicate"] is False and second.json()["duplicate"] is True
    assert second.status_code == 200 and count(database_url, event_id) == 1


def test_concurrent_duplicates_store_exactly_one(gateway: str, database_url: str) -> None:
    event_id, body = new_failure()

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=10) as client:
            return await asyncio.gather(*(client.post(gateway + "/webhooks/stripe", content=body,
                                                      headers={"stripe-signature": sign(body)}) for _ in range(25)))

    responses = asyncio.run(burst())
    assert all(r.status_code == 200 for r in responses)
    assert sum(1 for r in responses if not r.json()["duplicate"]) == 1
    assert count(database_url, event_id) == 1


def test_losing_redis_never_causes_a_duplicate(gateway: str, database_url: str, redis_url: str) -> None:
    event_id, body = new_failure()
    post(gateway, body, sign(body))
    redis.Redis.from_url(redis_url).flushall()
    again = post(gateway, body, sign(body))
    assert again.json()["duplicate"] is True and count(database_url, event_id) == 1


def test_a_rotated_secret_is_accepted(gateway: str, database_url: str) -> None:
    event_id, body = new_failure()
    assert post(gateway, body, sign(body, secret="whsec_old_secret")).status_code == 200


@pytest.mark.parametrize("case", ["missing", "wrong_secret", "stale", "tampered", "no_v1"])
def test_an_unverified_body_is_refused_with_a_problem_and_never_stored(gateway: str, database_url: str,
                                                                      case: str) -> None:
    event_id, body = new_failure()
    signature = {"missing": None, "wrong_secret": sign(body, secret="whsec_wrong"),
                 "stale": sign(body, timestamp=int(time.time()) - 301), "tampered": sign(body + b" "),
                 "no_v1": f"t={int(time.time())}"}[case]
    response = post(gateway, body, signature)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"]
    assert count(database_url, event_id) == 0


def test_a_signed_body_that_is_not_json_is_a_400(gateway: str) -> None:
    body = b"not json at all"
    response = post(gateway, body, sign(body))
    assert response.status_code == 400 and "JSON" in response.json()["detail"]


def test_a_body_over_one_mebibyte_is_a_413(gateway: str) -> None:
    body = b"{" + b" " * (1024 * 1024 + 10) + b"}"
    response = post(gateway, body, sign(body))
    assert response.status_code == 413 and response.json()["status"] == 413


def test_unknown_provider_and_unknown_tenant_are_404(gateway: str) -> None:
    _, body = new_failure()
    assert post(gateway, body, sign(body), "/webhooks/paypal").status_code == 404
    response = post(gateway, body, sign(body), "/webhooks/stripe/no-such-tenant")
    assert response.status_code == 404 and "no-such-tenant" in response.json()["detail"]


def test_an_unused_event_type_is_stored_and_ignored(gateway: str, database_url: str) -> None:
    event_id = f"evt_{uuid.uuid4().hex[:12]}"
    body = envelope(event_id, "product.created", {"id": "prod_1", "object": "product"})
    assert post(gateway, body, sign(body)).json()["status"] == "ignored"
    assert status_of(database_url, event_id)[0] == "ignored"


def test_a_verified_payload_that_cannot_be_parsed_is_quarantined_and_listed(gateway: str, database_url: str) -> None:
    event_id = f"evt_{uuid.uuid4().hex[:12]}"
    broken = invoice("in_broken", "cus_x")
    del broken["customer"]
    body = envelope(event_id, "invoice.payment_failed", broken)
    response = post(gateway, body, sign(body))
    assert response.status_code == 200 and response.json()["status"] == "quarantined"
    status, reason = status_of(database_url, event_id)
    assert status == "quarantined" and reason and "customer" in reason
    listed = httpx.get(gateway + "/api/deliveries?status=quarantined&limit=1000", headers=AUTH,
                       timeout=10).json()["data"]
    assert event_id in {row["provider_event_id"] for row in listed}


def test_an_invalid_status_filter_is_a_problem(gateway: str) -> None:
    response = httpx.get(gateway + "/api/deliveries?status=bogus", headers=AUTH, timeout=10)
    assert response.status_code == 400 and "status must be one of" in response.json()["detail"]


def test_a_redis_claim_from_another_database_never_answers_for_this_one(gateway: str, database_url: str,
                                                                         redis_url: str) -> None:
    """Redis outliving its database (a restore, a new test database) must not make a new event a duplicate."""
    event_id, body = new_failure()
    client = redis.Redis.from_url(redis_url)
    for key in (f"payrisk:dlv:default:stripe:{event_id}",):  # what a tenant-only key would have been
        client.set(key, b"c")
    response = post(gateway, body, sign(body))
    assert response.json()["duplicate"] is False and count(database_url, event_id) == 1
