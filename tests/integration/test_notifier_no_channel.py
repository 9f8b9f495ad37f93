"""An alert with no alert channel configured is recorded as `no_channel`, not as sent (real PostgreSQL).

Same style as test_notifier_outbox.py: a uniquely named database (every migration applied by the real runner),
a simulated clock passed to every `run_once`.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
import structlog
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import SecretStr

from actors.metrics import notifier_metrics
from actors.notifier import dispatch
from actors.notifier.dispatch import run_once
from actors.notifier.sender import NO_CHANNEL_REASON, NotifierSettings, Sender
from store import Database
from tests.support.databases import empty_outbox, own_database

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
T0 = datetime(2025, 3, 4, 14, tzinfo=UTC)


@pytest.fixture(scope="module")
def notifier_database() -> Iterator[str]:
    with own_database(ADMIN_URL, "payrisk_nochan") as url:
        yield url


@pytest.fixture
async def pool(notifier_database: str) -> AsyncIterator[Database]:
    async with empty_outbox(notifier_database) as pool:
        yield pool


@pytest.fixture
async def offline() -> AsyncIterator[Sender]:
    sender = Sender(NotifierSettings())  # no SLACK_WEBHOOK_URL, no ALERT_WEBHOOK_URL
    yield sender
    await sender.aclose()


class Hook:
    """A real HTTP receiver on 127.0.0.1 answering 200."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 — http.server hook
                hook.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def alert(kind: str = "engineering") -> dict[str, Any]:
    return {"kind": kind, "title": "CONFIG_ERROR: Stripe rejects our API key", "text": "Retries are paused.",
            "fields": {"provider": "stripe"}, "severity": "critical"}


async def enqueue(pool: Database, key: str, payload: dict[str, Any]) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO outbox (tenant_id, topic, idempotency_key, stream_id, payload, available_at)"
            " VALUES ('acme', 'alert', %s, 'monitor:stripe', %s, %s)", (key, Jsonb(payload), T0))


async def rows(pool: Database, sql: str, *args: Any) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(sql, args)
        return [dict(row) for row in await cursor.fetchall()]


async def test_an_alert_without_a_channel_is_recorded_as_no_channel_with_the_reason(
    pool: Database, offline: Sender
) -> None:
    dispatch._warned_no_channel = False
    before = notifier_metrics().counts["engineering"]
    await enqueue(pool, "alert:config_error:1", alert())
    await enqueue(pool, "alert:config_error:2", alert())
    with structlog.testing.capture_logs() as logs:
        assert await run_once(pool, offline, T0, "w1") == 2

    recorded = await rows(pool, "SELECT idempotency_key, channel, status, recipient, detail FROM notifications"
                                " ORDER BY idempotency_key")
    assert [(r["status"], r["channel"]) for r in recorded] == [("no_channel", "alert")] * 2
    assert all(r["detail"]["reason"] == NO_CHANNEL_REASON == "no alert channel configured" for r in recorded)
    assert not any(r["status"] == "sent" for r in recorded)
    done = await rows(pool, "SELECT sent_at, dead_at, last_error FROM outbox ORDER BY outbox_id")
    assert all(r["sent_at"] == T0 and r["dead_at"] is None and r["last_error"] == NO_CHANNEL_REASON for r in done)
    # handled once: nothing left to claim, no dead-letter alert about it
    assert await run_once(pool, offline, T0 + timedelta(hours=1), "w1") == 0
    assert notifier_metrics().counts["engineering"] == before + 2
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1 and NO_CHANNEL_REASON in warnings[0]["event"]


async def test_the_warning_is_logged_once_per_process_not_once_per_batch(
    pool: Database, offline: Sender
) -> None:
    dispatch._warned_no_channel = False
    with structlog.testing.capture_logs() as logs:
        for n in range(3):
            await enqueue(pool, f"alert:spike:{n}", alert("spike"))
            assert await run_once(pool, offline, T0 + timedelta(minutes=n), "w1") == 1
    assert len([e for e in logs if e["log_level"] == "warning"]) == 1


async def test_an_alert_with_a_channel_is_still_recorded_as_sent(pool: Database) -> None:
    hook = Hook()
    sender = Sender(NotifierSettings(webhook_url=hook.url, webhook_secret=SecretStr("whsec_x")))
    try:
        await enqueue(pool, "alert:fraud:1", alert("fraud"))
        assert await run_once(pool, sender, T0, "w1") == 1
    finally:
        await sender.aclose()
        hook.stop()
    (recorded,) = await rows(pool, "SELECT status, recipient FROM notifications")
    assert (recorded["status"], recorded["recipient"]) == ("sent", "webhook") and len(hook.bodies) == 1


async def test_the_status_column_accepts_only_known_values(pool: Database) -> None:
    async with pool.connection() as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            await conn.execute("INSERT INTO notifications (tenant_id, idempotency_key, channel, sent_at, status)"
                               " VALUES ('acme', 'k', 'alert', now(), 'delivered-ish')")
