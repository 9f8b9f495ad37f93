"""The gateway under hostile or broken conditions (issue 16, points 1-5), over real HTTP with real PostgreSQL and
Redis; PostgreSQL and Redis are made unreachable through a TCP fault proxy in front of them, never touched."""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import uvicorn

from gateway.app import create_app
from gateway.ingest import Delivery, GroupCommitter
from payrisk.chaos.proxy import FaultProxy
from payrisk.httpserver import gateway_config
from settings import Settings, load_settings
from store import Database
from tests.support.principals import bearer
from tests.support.stripe_events import SECRET, envelope, invoice, sign

#: a platform administrator's API key (set by the gateway fixture): every API call carries it
AUTH: dict[str, str] = {}


class Gateway:
    """The gateway app under uvicorn with the production server options, in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.config = gateway_config(create_app(settings), settings)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.config.port = s.getsockname()[1]
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.config.port}"

    def __enter__(self) -> Gateway:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "gateway did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def _settings(database_url: str, redis_url: str, **extra: object) -> Settings:
    return load_settings(environ={}, dotenv=None, database_url=database_url, redis_url=redis_url,
                         stripe_webhook_secrets=(SECRET,), sweep_interval_seconds=3600, **extra)


def _via(url: str, proxy: FaultProxy) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, f"{parts.username + '@' if parts.username else ''}{proxy.address}",
                       parts.path, parts.query, parts.fragment))


def _upstream(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 5432


@pytest.fixture(scope="module")
def gateway(database_url: str, redis_url: str, platform_key: str) -> Iterator[str]:
    AUTH.update(bearer(platform_key))
    with Gateway(_settings(database_url, redis_url, header_timeout_seconds=1.0, body_timeout_seconds=1.0)) as gw:
        yield gw.url


def _failure(invoice_id: str | None = None, customer: str = "cus_edge", event_id: str | None = None
             ) -> tuple[str, bytes]:
    event_id = event_id or f"evt_{uuid.uuid4().hex[:12]}"
    return event_id, envelope(event_id, "invoice.payment_failed", invoice(invoice_id or f"in_{event_id}", customer))


def _post(url: str, body: bytes) -> httpx.Response:
    return httpx.post(url + "/webhooks/stripe", content=body, timeout=30,
                      headers={"stripe-signature": sign(body), "content-type": "application/json"})


def _row(database_url: str, event_id: str) -> tuple[str, str | None] | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT status, status_reason FROM deliveries WHERE provider_event_id = %s",
                           (event_id,)).fetchone()
    return (row[0], row[1]) if row else None


# ------------------------------------------------------------------------------------ 1. a poisonous delivery


def test_a_nul_in_the_invoice_id_is_quarantined_with_its_reason_not_handed_to_the_customer(
        gateway: str, database_url: str) -> None:
    event_id, body = _failure(invoice_id="in_\u0000poison")
    response = _post(gateway, body)
    assert response.status_code == 200 and response.json()["status"] == "quarantined"
    status, reason = _row(database_url, event_id) or ("missing", None)
    assert status == "quarantined" and reason is not None and "NUL" in reason


def test_a_nul_in_the_customer_id_is_quarantined_not_a_500(gateway: str, database_url: str) -> None:
    event_id, body = _failure(customer="cus_\u0000x")
    response = _post(gateway, body)
    assert response.status_code == 200 and response.json()["status"] == "quarantined"


def test_a_nul_in_the_event_id_is_a_400_and_its_concurrent_neighbours_are_stored(
        gateway: str, database_url: str) -> None:
    bad_id, bad = _failure(event_id=f"evt_\u0000{uuid.uuid4().hex[:6]}")
    good = [_failure() for _ in range(20)]

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(client.post(gateway + "/webhooks/stripe", content=b,
                                                      headers={"stripe-signature": sign(b)})
                                          for b in [bad, *(b for _, b in good)]))

    responses = asyncio.run(burst())
    assert responses[0].status_code == 400 and "NUL" in responses[0].json()["detail"]
    assert [r.status_code for r in responses[1:]] == [200] * 20
    assert all(_row(database_url, event_id) is not None for event_id, _ in good)


async def test_a_row_postgresql_refuses_fails_alone_not_its_whole_group_commit(database_url: str) -> None:
    db = Database(database_url, max_size=2)
    await db.open()
    committer = GroupCommitter(db, None, window_ms=50)  # a long window: all of them share one batch
    committer.start()
    try:
        def delivery(event_id: str) -> Delivery:
            return Delivery("default", "stripe", event_id, "invoice.payment_failed", "cus_batch", b"{}", {},
                            "received")
        good = [delivery(f"evt_{uuid.uuid4().hex[:12]}") for _ in range(5)]
        results = await asyncio.gather(*(committer.submit(d) for d in [delivery("evt_\u0000poison"), *good]),
                                       return_exceptions=True)
    finally:
        await committer.stop()
        await db.close()
    assert isinstance(results[0], Exception)
    assert all(not isinstance(r, BaseException) and r.delivery_id for r in results[1:]), results


# ------------------------------------------------------------------------------------ 2. PostgreSQL down


@pytest.mark.parametrize("fault", ["refuse", "blackhole"])
def test_with_postgresql_unreachable_a_webhook_is_a_fast_503_with_retry_after(
        database_url: str, redis_url: str, platform_key: str, fault: str) -> None:
    AUTH.update(bearer(platform_key))
    proxy = FaultProxy(_upstream(database_url)).start()
    try:
        with Gateway(_settings(_via(database_url, proxy), redis_url)) as gw:
            _, body = _failure()
            assert _post(gw.url, body).status_code == 200
            proxy.set_mode(fault)
            started = time.monotonic()
            _, body = _failure()
            response = _post(gw.url, body)
            elapsed = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"].isdigit()
            assert response.headers["content-type"] == "application/problem+json"
            assert "PostgreSQL" in response.json()["detail"]
            assert elapsed < 8.0
            api = httpx.get(gw.url + "/api/deliveries", timeout=30, headers=AUTH)
            assert api.status_code == 503 and "retry-after" in api.headers
            proxy.set_mode("pass")
            _, body = _failure()
            deadline = time.monotonic() + 20
            while (status := _post(gw.url, body).status_code) != 200 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert status == 200  # and it comes back by itself
    finally:
        proxy.stop()


# ------------------------------------------------------------------------------------ 3. readiness


def test_with_redis_down_the_gateway_stays_ready_and_says_redis_is_degraded(database_url: str, redis_url: str,
                                                                           platform_key: str) -> None:
    AUTH.update(bearer(platform_key))
    parts = urlsplit(redis_url)
    proxy = FaultProxy((parts.hostname or "127.0.0.1", parts.port or 6379)).start()
    try:
        with Gateway(_settings(database_url, f"redis://{proxy.address}/0")) as gw:
            proxy.set_mode("refuse")
            ready = httpx.get(gw.url + "/readyz", timeout=30)
            assert ready.status_code == 200 and "redis" in ready.json()["degraded"]
            verbose = httpx.get(gw.url + "/readyz?verbose", timeout=30).json()
            assert verbose["dependencies"]["redis"]["ready"] is False
            assert verbose["dependencies"]["postgres"]["ready"] is True
            _, body = _failure()
            assert _post(gw.url, body).status_code == 200
            metrics = httpx.get(gw.url + "/metrics", timeout=30, headers=AUTH).text
            assert 'payrisk_dependency_up{dependency="redis"} 0.0' in metrics
    finally:
        proxy.stop()


def test_with_postgresql_down_the_gateway_is_not_ready(database_url: str, redis_url: str) -> None:
    proxy = FaultProxy(_upstream(database_url)).start()
    try:
        with Gateway(_settings(_via(database_url, proxy), redis_url)) as gw:
            proxy.set_mode("refuse")
            ready = httpx.get(gw.url + "/readyz", timeout=30)
            assert ready.status_code == 503 and ready.json()["ready"] is False
    finally:
        proxy.stop()


# ------------------------------------------------------------------------------------ 4. read API inputs

SUPERSCRIPT_TWO = "\u00b2"


@pytest.mark.parametrize("path", [
    f"/api/deliveries?limit={SUPERSCRIPT_TWO}", f"/api/deliveries?after={SUPERSCRIPT_TWO}",
    f"/api/cases?limit={SUPERSCRIPT_TWO}",
    "/api/cases?after=" + base64.urlsafe_b64encode(b"[" * 5000).decode(),
    "/api/cases?after=" + base64.urlsafe_b64encode(b"[" * 1200 + b"]" * 1200).decode(),
    "/api/customers/cus%00x", "/api/customers/cus%00x/timeline", "/api/deliveries?status=app%00lied",
    "/api/cases?customer=a%00b", "/api/analytics/summary?tenant=x%00", "/api/deliveries/1?tenant=%00",
])
def test_malformed_read_parameters_are_a_400_problem_never_a_500(gateway: str, path: str) -> None:
    response = httpx.get(gateway + path, timeout=30, headers=AUTH)
    assert response.status_code == 400, (path, response.status_code, response.text[:200])
    assert response.headers["content-type"] == "application/problem+json" and response.json()["detail"]


@pytest.mark.parametrize(("method", "path"), [("PUT", "/api/customers/cus_big/profile"),
                                              ("POST", "/api/classify"),
                                              ("PUT", "/api/tenants/default/classification-overrides")])
def test_an_api_body_over_the_limit_is_a_413(gateway: str, method: str, path: str) -> None:
    body = b'{"tags": ["' + b"x" * (2 * 1024 * 1024) + b'"]}'
    response = httpx.request(method, gateway + path, content=body, timeout=30, headers=AUTH)
    assert response.status_code == 413 and response.json()["status"] == 413


def test_a_method_not_allowed_says_which_are(gateway: str) -> None:
    response = httpx.delete(gateway + "/api/deliveries", timeout=30, headers=AUTH)
    assert response.status_code == 405 and "GET" in response.headers["allow"]
    assert response.headers["content-type"] == "application/problem+json"


# ------------------------------------------------------------------------------------ 5. slow clients


def _raw(url: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=10)
    return sock


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
        return True, received
    except TimeoutError:
        return False, received
    finally:
        sock.close()


def test_a_client_that_never_finishes_its_headers_is_cut_off(gateway: str) -> None:
    sock = _raw(gateway)
    sock.sendall(b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n")  # and nothing more
    closed, answer = _closed_within(sock, 5.0)
    assert closed and answer.startswith(b"HTTP/1.1 408")


def test_a_client_that_connects_and_says_nothing_is_cut_off(gateway: str) -> None:
    closed, _ = _closed_within(_raw(gateway), 5.0)
    assert closed


def test_a_client_that_never_finishes_its_body_gets_a_408(gateway: str) -> None:
    sock = _raw(gateway)
    auth = "".join(f"{k}: {v}\r\n" for k, v in AUTH.items()).encode()
    sock.sendall(b"PUT /api/customers/cus_slow/profile HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                 + auth + b"content-length: 100\r\n\r\n{\"plan\":")
    closed, answer = _closed_within(sock, 6.0)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_a_client_that_gives_up_mid_body_is_one_log_line_not_a_traceback(
        gateway: str, caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(5):
        sock = _raw(gateway)
        sock.sendall(b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: 1000\r\n\r\n{\"id\":")
        time.sleep(0.05)
        sock.close()
    time.sleep(0.5)
    errors = [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL") or r.exc_info]
    assert errors == []
