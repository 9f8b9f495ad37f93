"""The notifier end to end: real PostgreSQL outbox, a real aiosmtpd server and a real local HTTP receiver.

Time is simulated: every `run_once` gets the clock it should see.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from pydantic import SecretStr

from actors.notifier.catcher import CatcherHandle, free_port, start_catcher
from actors.notifier.dispatch import TOPICS, run_once
from actors.notifier.policy import SendPolicy, message_id_for
from actors.notifier.sender import NotifierSettings, Sender
from actors.notifier.signature import SIGNATURE_HEADER, verify_signature
from store import Database, StoreError
from store import outbox as store_outbox
from tests.support.databases import empty_outbox, own_database

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LINK = "https://invoice.stripe.com/i/acct_1/test_YWNjdF8x"
T0 = datetime(2025, 3, 4, 14, tzinfo=UTC)  # 15:00 in Paris, 09:00 in New York
SECRET = "whsec_test_notifier"


@pytest.fixture(scope="module")
def notifier_database() -> Iterator[str]:
    """A uniquely named database with every migration applied by the real runner; dropped afterwards."""
    with own_database(ADMIN_URL, "payrisk_notifier") as url:
        yield url


@pytest.fixture
async def pool(notifier_database: str) -> AsyncIterator[Database]:
    async with empty_outbox(notifier_database) as pool:
        yield pool


@pytest.fixture
def catcher(tmp_path: Path) -> Iterator[CatcherHandle]:
    handle = start_catcher(0, tmp_path / "mail")
    yield handle
    handle.stop()


class Receiver:
    """A real HTTP server on 127.0.0.1 that records every POST and answers `status[path]` (default 200)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.status: dict[str, int] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 — http.server hook
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append((self.path, dict(self.headers.items()), body))
                self.send_response(receiver.status.get(self.path, 200))
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def posts(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        return [(headers, body) for p, headers, body in self.requests if p == path]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def settings_for(smtp_url: str, receiver: Receiver | None = None, **policy: Any) -> NotifierSettings:
    hooks: dict[str, Any] = {}
    if receiver is not None:
        hooks = {"slack_webhook_url": receiver.url("/slack"), "webhook_url": receiver.url("/hook")}
    return NotifierSettings(
        smtp_url=SecretStr(smtp_url),
        mail_from="billing@payrisk.test",
        webhook_secret=SecretStr(SECRET),
        policy=SendPolicy(**policy),
        **hooks,
    )


@pytest.fixture
async def senders() -> AsyncIterator[list[Sender]]:
    made: list[Sender] = []
    yield made
    for sender in made:
        await sender.aclose()


def make(senders: list[Sender], settings: NotifierSettings) -> Sender:
    senders.append(Sender(settings))
    return senders[-1]


def email(customer: str, template: str = "action_required", tz: str = "Europe/Paris") -> dict[str, Any]:
    return {
        "template": template,
        "to": f"{customer}@example.com",
        "customer_id": customer,
        "customer_name": "Ada Lovelace",
        "invoice_id": f"in_{customer}",
        "amount_due": 4900,
        "currency": "eur",
        "hosted_invoice_url": LINK,
        "next_attempt_at": None,
        "timezone": tz,
        "branding": {"name": "Acme Cloud", "support_email": "help@acme.test", "logo_url": None},
    }


def engineering_alert() -> dict[str, Any]:
    return {
        "kind": "engineering",
        "title": "CONFIG_ERROR: Stripe rejects our API key",
        "text": "Retries are paused until the key is fixed.",
        "fields": {"code": "api_key_expired", "provider": "stripe"},
        "severity": "critical",
    }


async def enqueue(
    pool: Database, key: str, topic: str, payload: dict[str, Any], at: datetime = T0
) -> None:
    """What the engine does in its decision transaction (minus the rest of the decision)."""
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO outbox (tenant_id, topic, idempotency_key, stream_id, payload, available_at)"
            " VALUES ('acme', %s, %s, %s, %s, %s) ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
            (topic, key, f"customer:{payload.get('customer_id', '-')}", Jsonb(payload), at),
        )


async def outbox(pool: Database, key: str) -> dict[str, Any]:
    async with pool.connection() as conn:
        cursor = conn.cursor(row_factory=psycopg.rows.dict_row)
        await cursor.execute("SELECT * FROM outbox WHERE tenant_id = 'acme' AND idempotency_key = %s", (key,))
        row = await cursor.fetchone()
    assert row is not None
    return dict(row)


async def scalar(pool: Database, sql: str) -> Any:
    async with pool.connection() as conn:
        row = await (await conn.execute(sql)).fetchone()
    assert row is not None
    return next(iter(row.values()))


def wait_for(predicate: Any) -> None:
    """aiosmtpd stores on its own thread after answering 250; give it a moment (not a timed assertion)."""
    for _ in range(200):
        if predicate():
            return
        time.sleep(0.01)


async def test_the_example_flow_sends_exactly_one_fallback_email_with_the_template_and_link(
    pool: Database, catcher: CatcherHandle, senders: list[Sender]
) -> None:
    sender = make(senders, settings_for(catcher.smtp_url))
    await enqueue(pool, "email:in_cus_1:action_required", "email", email("cus_1"))

    assert await run_once(pool, sender, T0, "w1") == 1
    assert await run_once(pool, sender, T0 + timedelta(hours=1), "w1") == 0

    wait_for(lambda: catcher.messages)
    [message] = catcher.messages
    assert message["To"] == "Ada Lovelace <cus_1@example.com>"
    assert message["Subject"] == "Action needed: confirm your €49.00 payment to Acme Cloud"
    assert message["Message-ID"] == message_id_for("acme:email:in_cus_1:action_required", "payrisk.test")
    assert LINK in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert f'href="{LINK}"' in message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert len(list(catcher.maildir.glob("*.eml"))) == 1
    row = await outbox(pool, "email:in_cus_1:action_required")
    assert row["sent_at"] == T0 and row["claimed_by"] is None
    trail = await scalar(pool, "SELECT array_agg(template || ' ' || recipient) FROM notifications")
    assert trail == ["action_required cus_1@example.com"]


async def test_an_smtp_outage_then_recovery_delivers_every_queued_mail_once(
    pool: Database, catcher: CatcherHandle, senders: list[Sender], tmp_path: Path
) -> None:
    sender = make(senders, settings_for(catcher.smtp_url, backoff_base=timedelta(seconds=30)))
    customers = [f"cus_{i}" for i in range(5)]
    for customer in customers:
        await enqueue(pool, f"email:{customer}", "email", email(customer, "payment_failed"))
    catcher.stop()

    assert await run_once(pool, sender, T0, "w1") == 5  # all five fail and are rescheduled
    row = await outbox(pool, "email:cus_0")
    assert (row["attempts"], row["available_at"], row["sent_at"]) == (1, T0 + timedelta(seconds=30), None)
    assert "SMTP unavailable" in row["last_error"]

    revived = start_catcher(catcher.port, tmp_path / "mail-after")
    try:
        assert await run_once(pool, sender, T0 + timedelta(seconds=10), "w1") == 0  # not due yet
        assert await run_once(pool, sender, T0 + timedelta(seconds=30), "w1") == 5
        assert await run_once(pool, sender, T0 + timedelta(hours=2), "w1") == 0
        wait_for(lambda: len(revived.messages) >= 5)
        assert sorted(m["To"].addresses[0].username for m in revived.messages) == customers
        assert len({m["Message-ID"] for m in revived.messages}) == 5
    finally:
        revived.stop()
    assert await scalar(pool, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0


async def test_the_frequency_cap_and_quiet_hours_hold_on_a_simulated_clock(
    pool: Database, catcher: CatcherHandle, senders: list[Sender]
) -> None:
    sender = make(senders, settings_for(catcher.smtp_url))  # defaults: 2 per 24 h, quiet 21:00-08:00
    ny = "America/New_York"
    day_one = datetime(2025, 3, 4, 19, tzinfo=UTC)  # 14:00 in New York
    evening = datetime(2025, 3, 5, 1, 50, tzinfo=UTC)  # 20:50
    night = datetime(2025, 3, 5, 3, tzinfo=UTC)  # 22:00

    await enqueue(pool, "a", "email", email("cus_ny", "payment_failed", ny), day_one)
    assert await run_once(pool, sender, day_one, "w1") == 1
    await enqueue(pool, "b", "email", email("cus_ny", "action_required", ny), evening)
    await enqueue(pool, "c", "email", email("cus_ny", "final_notice", ny), evening)
    assert await run_once(pool, sender, evening, "w1") == 2  # b goes out, c hits the cap of 2 per 24 h
    await enqueue(pool, "d", "email", email("cus_night_owl", "payment_failed", ny), night)
    assert await run_once(pool, sender, night, "w1") == 1  # deferred: 22:00 local

    assert (await outbox(pool, "c"))["available_at"] == day_one + timedelta(hours=24)
    assert (await outbox(pool, "d"))["available_at"] == datetime(2025, 3, 5, 13, tzinfo=UTC)  # 08:00 local
    wait_for(lambda: len(catcher.messages) >= 2)
    assert len(catcher.messages) == 2

    assert await run_once(pool, sender, datetime(2025, 3, 5, 12, 59, tzinfo=UTC), "w1") == 0
    assert await run_once(pool, sender, datetime(2025, 3, 5, 13, tzinfo=UTC), "w1") == 1
    assert await run_once(pool, sender, datetime(2025, 3, 5, 18, 59, tzinfo=UTC), "w1") == 0
    assert await run_once(pool, sender, datetime(2025, 3, 5, 19, tzinfo=UTC), "w1") == 1

    wait_for(lambda: len(catcher.messages) >= 4)
    sent = await scalar(
        pool,
        "SELECT array_agg(idempotency_key || '@' || to_char(sent_at AT TIME ZONE 'UTC', 'DD HH24:MI')"
        " ORDER BY sent_at) FROM notifications",
    )
    assert sent == ["a@04 19:00", "b@05 01:50", "d@05 13:00", "c@05 19:00"]
    assert len(catcher.messages) == 4


async def test_a_burst_of_100_config_errors_for_one_incident_yields_one_alert(
    pool: Database, catcher: CatcherHandle, receiver: Receiver, senders: list[Sender]
) -> None:
    sender = make(senders, settings_for(catcher.smtp_url, receiver))
    key = "alert:config_error:stripe:api_key_expired:incident-1"
    await asyncio.gather(*(enqueue(pool, key, "alert", engineering_alert()) for _ in range(100)))

    assert await run_once(pool, sender, T0, "w1") == 1
    assert await run_once(pool, sender, T0 + timedelta(minutes=5), "w1") == 0
    assert len(receiver.posts("/slack")) == 1 and len(receiver.posts("/hook")) == 1
    slack = json.loads(receiver.posts("/slack")[0][1])
    assert slack["text"].endswith(
        "CONFIG_ERROR: Stripe rejects our API key: Retries are paused until the key is fixed."
    )
    assert await scalar(pool, "SELECT count(*) FROM notifications WHERE channel = 'alert'") == 1


def documented_verify(secret: str, header: str, body: bytes, now: float, tolerance: int = 300) -> bool:
    """The receiver snippet from docs/NOTIFICATIONS.md, with the clock passed in instead of time.time()."""
    parts = [item.split("=", 1) for item in header.split(",") if "=" in item]
    timestamps = [v for k, v in parts if k == "t"]
    if not timestamps or not timestamps[0].isdigit():
        return False
    t = timestamps[0]
    if abs(now - int(t)) > tolerance:
        return False
    expected = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, v) for k, v in parts if k == "v1")


async def test_the_alert_webhook_signature_verifies_with_the_documented_scheme(
    pool: Database, catcher: CatcherHandle, receiver: Receiver, senders: list[Sender]
) -> None:
    sender = make(senders, settings_for(catcher.smtp_url, receiver))
    await enqueue(pool, "alert:fraud:ch_1", "alert", {**engineering_alert(), "kind": "fraud"})
    await run_once(pool, sender, T0, "w1")

    [(headers, body)] = receiver.posts("/hook")
    header = headers[SIGNATURE_HEADER]
    assert header.startswith(f"t={int(T0.timestamp())},v1=")
    verify_signature(SECRET, header, body, timedelta(minutes=5), T0 + timedelta(seconds=3))
    assert documented_verify(SECRET, header, body, T0.timestamp() + 3)
    assert not documented_verify(SECRET, header, body + b" ", T0.timestamp() + 3)
    assert not documented_verify(SECRET, header, body, T0.timestamp() + 301)
    assert headers["Payrisk-Idempotency-Key"] == json.loads(body)["id"] == "acme:alert:fraud:ch_1"


async def test_a_notification_that_keeps_failing_is_dead_lettered_and_raises_one_alert(
    pool: Database, receiver: Receiver, senders: list[Sender]
) -> None:
    nowhere = f"smtp://127.0.0.1:{free_port()}"  # nothing listens there
    sender = make(
        senders, settings_for(nowhere, receiver, max_attempts=3, backoff_base=timedelta(seconds=10))
    )
    await enqueue(pool, "email:in_9:final", "email", email("cus_9", "final_notice"))

    for offset in (0, 10, 30):  # the backoff schedule: 10 s, then 20 s
        assert await run_once(pool, sender, T0 + timedelta(seconds=offset), "w1") == 1
    dead = await outbox(pool, "email:in_9:final")
    assert dead["dead_at"] == T0 + timedelta(seconds=30) and dead["attempts"] == 3
    assert "SMTP unavailable" in dead["last_error"]

    assert await run_once(pool, sender, T0 + timedelta(seconds=30), "w1") == 1  # the dead_letter alert
    assert await run_once(pool, sender, T0 + timedelta(hours=1), "w1") == 0
    [(_, body)] = receiver.posts("/hook")
    announced = json.loads(body)
    assert announced["kind"] == "dead_letter" and announced["fields"]["idempotency_key"] == "email:in_9:final"
    assert announced["fields"]["customer_id"] == "cus_9"


async def test_a_dead_alert_does_not_raise_an_alert_about_itself(
    pool: Database, receiver: Receiver, catcher: CatcherHandle, senders: list[Sender]
) -> None:
    receiver.status["/hook"] = 400  # a permanent refusal
    sender = make(senders, settings_for(catcher.smtp_url, receiver))
    await enqueue(pool, "alert:spike:1", "alert", {**engineering_alert(), "kind": "spike"})

    assert await run_once(pool, sender, T0, "w1") == 1  # dead at once: 4xx is permanent
    assert await run_once(pool, sender, T0, "w1") == 1  # its dead_letter alert, refused the same way
    assert await run_once(pool, sender, T0 + timedelta(days=1), "w1") == 0
    assert await scalar(pool, "SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL") == 2


async def test_rows_claimed_by_a_crashed_worker_are_sent_after_the_lease_with_the_same_message_id(
    pool: Database, catcher: CatcherHandle, senders: list[Sender]
) -> None:
    sender = make(senders, settings_for(catcher.smtp_url))
    await enqueue(pool, "email:lease", "email", email("cus_lease"))
    assert len(await store_outbox.claim(pool, T0, "crashed-worker", TOPICS, limit=10, lease=timedelta(minutes=5))) == 1

    assert await run_once(pool, sender, T0 + timedelta(minutes=4), "w2") == 0
    assert await run_once(pool, sender, T0 + timedelta(minutes=6), "w2") == 1
    wait_for(lambda: catcher.messages)
    assert catcher.messages[0]["Message-ID"] == message_id_for("acme:email:lease", "payrisk.test")


async def test_two_workers_never_hold_emails_to_the_same_customer_at_once(
    pool: Database,
) -> None:
    await enqueue(pool, "e1", "email", email("cus_same"))
    await enqueue(pool, "e2", "email", email("cus_same"))
    await enqueue(pool, "e3", "email", email("cus_other"))

    first = await store_outbox.claim(pool, T0, "w1", TOPICS, limit=1, lease=timedelta(minutes=5))
    second = await store_outbox.claim(pool, T0, "w2", TOPICS, limit=10, lease=timedelta(minutes=5))
    assert [r.idempotency_key for r in first] == ["e1"]
    assert [r.idempotency_key for r in second] == ["e3"]


async def test_concurrent_workers_send_every_queued_mail_exactly_once(
    pool: Database, catcher: CatcherHandle, senders: list[Sender]
) -> None:
    settings = settings_for(catcher.smtp_url)
    workers = [make(senders, settings), make(senders, settings), make(senders, settings)]
    for i in range(24):
        await enqueue(pool, f"email:many:{i}", "email", email(f"cus_many_{i}", "payment_failed"))

    async def work(index: int) -> int:
        handled = 0
        while batch := await run_once(pool, workers[index], T0, f"w{index}", limit=3):
            handled += batch
        return handled

    assert sum(await asyncio.gather(*(work(i) for i in range(3)))) == 24
    wait_for(lambda: len(catcher.messages) >= 24)
    assert len(catcher.messages) == 24
    assert len({m["Message-ID"] for m in catcher.messages}) == 24


async def test_outcomes_are_recorded_together_and_one_the_database_refuses_leaves_the_others_recorded(
    pool: Database, catcher: CatcherHandle, senders: list[Sender]
) -> None:
    sender = make(senders, settings_for(catcher.smtp_url))
    async with pool.connection() as conn:  # the database refuses one row's record (as a failing constraint would)
        await conn.execute(
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF NEW.idempotency_key LIKE '%poison%' THEN RAISE EXCEPTION 'refused by the test'; END IF;"
            " RETURN NEW; END $$")
        await conn.execute("CREATE TRIGGER refuse_poison BEFORE INSERT ON notifications FOR EACH ROW"
                           " EXECUTE FUNCTION refuse_poison()")
    try:
        for customer in ("cus_a", "cus_poison", "cus_b"):
            await enqueue(pool, f"email:{customer}", "email", email(customer, "payment_failed"))
        with pytest.raises(StoreError, match="refused by the test"):
            await run_once(pool, sender, T0, "w1")
        for key in ("email:cus_a", "email:cus_b"):  # sent and recorded: never sent again
            row = await outbox(pool, key)
            assert row["sent_at"] == T0 and row["claimed_by"] is None
        poison = await outbox(pool, "email:cus_poison")  # unrecorded: still claimed, sent again after the lease
        assert poison["sent_at"] is None and poison["claimed_by"] == "w1"
        trail = await scalar(pool, "SELECT array_agg(recipient ORDER BY recipient) FROM notifications")
        assert trail == ["cus_a@example.com", "cus_b@example.com"]
    finally:
        async with pool.connection() as conn:
            await conn.execute("DROP TRIGGER refuse_poison ON notifications")
            await conn.execute("DROP FUNCTION refuse_poison()")
