"""A tenant's own notification settings, end to end through the notifier: its quiet hours hold its customers'
emails, its alert channels (Slack, signed webhook, email) receive its alerts instead of the installation's, and a
change made while the notifier runs applies within the cache's few seconds. Real PostgreSQL (tenants stored and
secrets encrypted by the store), a real aiosmtpd server and a real local HTTP receiver; time is simulated."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from psycopg.types.json import Jsonb
from pydantic import SecretStr

from actors.notifier.catcher import CatcherHandle, start_catcher
from actors.notifier.dispatch import run_once
from actors.notifier.sender import NotifierSettings, Sender
from actors.notifier.signature import SIGNATURE_HEADER, SignatureError, verify_signature
from actors.notifier.tenant_source import TenantSettingsSource
from store import Database, tenant_records, tenant_secrets
from store.secrets import Keyring
from tests.integration.test_notifier_outbox import Receiver, email, engineering_alert, wait_for
from tests.support.databases import empty_outbox, own_database

MASTER = "notifier-tenants-master-" + "n" * 32
INSTALLATION_SECRET = "whsec_installation_alerts"
T0 = datetime(2025, 3, 4, 14, tzinfo=UTC)  # 15:00 in Paris: outside the installation's quiet hours (21-08)


@pytest.fixture(scope="module")
def tenants_database(server_url: str) -> Iterator[str]:
    """A database of this module's own (the dispatcher claims every due row, whoever wrote it)."""
    with own_database(server_url, "payrisk_ntenants") as url:
        yield url


@pytest.fixture
async def pool(tenants_database: str) -> AsyncIterator[Database]:
    async with empty_outbox(tenants_database) as pool:
        yield pool


@pytest.fixture
def catcher(tmp_path: Path) -> Iterator[CatcherHandle]:
    handle = start_catcher(0, tmp_path / "mail")
    yield handle
    handle.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


class Clock:
    """The tenant cache's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def source(tenants_database: str) -> AsyncIterator[tuple[TenantSettingsSource, Clock]]:
    clock = Clock()
    made = TenantSettingsSource(tenants_database, (MASTER,), ttl=5.0, clock=clock)
    yield made, clock
    await made.aclose()


@pytest.fixture
async def senders() -> AsyncIterator[list[Sender]]:
    made: list[Sender] = []
    yield made
    for sender in made:
        await sender.aclose()


def installation(smtp_url: str, receiver: Receiver) -> NotifierSettings:
    return NotifierSettings(smtp_url=SecretStr(smtp_url), mail_from="billing@payrisk.test",
                            slack_webhook_url=SecretStr(receiver.url("/slack")), webhook_url=receiver.url("/hook"),
                            webhook_secret=SecretStr(INSTALLATION_SECRET))


async def make_tenant(url: str, settings: dict[str, Any] | None = None, **secrets: str) -> str:
    """A tenant as `payrisk tenants create` stores it: plain settings in its row, secrets encrypted."""
    tenant = f"t_{uuid.uuid4().hex[:8]}"
    db = Database(url, max_size=1)
    await db.open()
    try:
        async with db.transaction() as conn:
            assert await tenant_records.create(conn, tenant, tenant.upper(), settings=settings) is not None
            for name, value in secrets.items():
                await tenant_secrets.put(conn, Keyring((MASTER,)), tenant, name, value)
    finally:
        await db.close()
    return tenant


async def change_tenant(url: str, tenant: str, settings: dict[str, Any]) -> None:
    db = Database(url, max_size=1)
    await db.open()
    try:
        async with db.transaction() as conn:
            await tenant_records.update(conn, tenant, name=None, retry_mode=None, settings=settings)
    finally:
        await db.close()


async def enqueue(pool: Database, tenant: str, key: str, topic: str, payload: dict[str, Any],
                  at: datetime = T0) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO outbox (tenant_id, topic, idempotency_key, stream_id, payload, available_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)", (tenant, topic, key, payload.get("customer_id"), Jsonb(payload), at))


async def available_at(pool: Database, tenant: str, key: str) -> tuple[datetime, datetime | None]:
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT available_at, sent_at FROM outbox WHERE tenant_id = %s"
                                        " AND idempotency_key = %s", (tenant, key))).fetchone()
    assert row is not None
    return row["available_at"], row["sent_at"]


async def test_a_tenants_alerts_go_to_its_own_slack_and_signed_webhook_and_not_to_the_installations(
        pool: Database, tenants_database: str, catcher: CatcherHandle, receiver: Receiver,
        source: tuple[TenantSettingsSource, Clock], senders: list[Sender]) -> None:
    own_secret = "tenant-alert-secret-" + uuid.uuid4().hex
    tenant = await make_tenant(tenants_database, {"alert_channels": {"webhook_url": receiver.url("/acme-hook")}},
                               alert_webhook_secret=own_secret, slack_webhook_url=receiver.url("/acme-slack"))
    sender = Sender(installation(catcher.smtp_url, receiver), tenants=source[0])
    senders.append(sender)
    await enqueue(pool, tenant, "alert:fraud:ch_1", "alert", {**engineering_alert(), "kind": "fraud"})

    assert await run_once(pool, sender, T0, "w1") == 1

    assert receiver.posts("/slack") == [] and receiver.posts("/hook") == []
    [(headers, body)] = receiver.posts("/acme-hook")
    verify_signature(own_secret, headers[SIGNATURE_HEADER], body, timedelta(minutes=5), T0)
    with pytest.raises(SignatureError):  # signed with the tenant's secret, not the installation's
        verify_signature(INSTALLATION_SECRET, headers[SIGNATURE_HEADER], body, timedelta(minutes=5), T0)
    assert json.loads(body)["tenant_id"] == tenant
    [(_, slack)] = receiver.posts("/acme-slack")
    assert f"tenant `{tenant}`" in slack.decode()
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT recipient, detail->>'channels' AS channels FROM notifications"
                                        " WHERE tenant_id = %s", (tenant,))).fetchone()
    assert row == {"recipient": "slack,webhook", "channels": "tenant"}


async def test_a_tenant_without_alert_channels_keeps_the_installations(
        pool: Database, tenants_database: str, catcher: CatcherHandle, receiver: Receiver,
        source: tuple[TenantSettingsSource, Clock], senders: list[Sender]) -> None:
    # a webhook URL without its signing secret is not a channel: the installation's still serve
    tenant = await make_tenant(tenants_database, {"alert_channels": {"webhook_url": receiver.url("/half")}})
    sender = Sender(installation(catcher.smtp_url, receiver), tenants=source[0])
    senders.append(sender)
    await enqueue(pool, tenant, "alert:config:1", "alert", engineering_alert())

    assert await run_once(pool, sender, T0, "w1") == 1

    assert len(receiver.posts("/slack")) == 1 and receiver.posts("/half") == []
    [(headers, body)] = receiver.posts("/hook")
    verify_signature(INSTALLATION_SECRET, headers[SIGNATURE_HEADER], body, timedelta(minutes=5), T0)


async def test_a_tenants_alert_address_receives_its_alerts_by_email(
        pool: Database, tenants_database: str, catcher: CatcherHandle, receiver: Receiver,
        source: tuple[TenantSettingsSource, Clock], senders: list[Sender]) -> None:
    tenant = await make_tenant(tenants_database, {"alert_channels": {"email": "oncall@acme.test"}})
    sender = Sender(installation(catcher.smtp_url, receiver), tenants=source[0])
    senders.append(sender)
    await enqueue(pool, tenant, "alert:config:2", "alert", engineering_alert())

    assert await run_once(pool, sender, T0, "w1") == 1

    wait_for(lambda: catcher.messages)
    [message] = catcher.messages
    assert message["To"] == "oncall@acme.test"
    assert message["Subject"] == "[payrisk critical] CONFIG_ERROR: Stripe rejects our API key"
    text = message.get_content()
    assert "code: api_key_expired" in text and f"tenant {tenant}" in text
    assert receiver.requests == []


async def test_a_tenants_quiet_hours_hold_its_emails_and_a_change_applies_within_seconds(
        pool: Database, tenants_database: str, catcher: CatcherHandle, receiver: Receiver,
        source: tuple[TenantSettingsSource, Clock], senders: list[Sender]) -> None:
    lookup, clock = source
    # 15:00 in Paris is no quiet hour of the installation's, but it is of this tenant's (14:00-18:00)
    quiet = await make_tenant(tenants_database, {"quiet_hours": {"start": "14:00", "end": "18:00"}})
    plain = await make_tenant(tenants_database)
    sender = Sender(installation(catcher.smtp_url, receiver), tenants=lookup)
    senders.append(sender)
    await enqueue(pool, quiet, "email:held", "email", email("cus_held", "payment_failed"))
    await enqueue(pool, plain, "email:sent", "email", email("cus_sent", "payment_failed"))

    assert await run_once(pool, sender, T0, "w1") == 2

    assert (await available_at(pool, plain, "email:sent"))[1] == T0
    assert await available_at(pool, quiet, "email:held") == (datetime(2025, 3, 4, 17, tzinfo=UTC), None)  # 18:00

    # the tenant drops its quiet hours (start == end: none) while the notifier runs
    await change_tenant(tenants_database, quiet, {"quiet_hours": {"start": "00:00", "end": "00:00"}})
    await enqueue(pool, quiet, "email:later", "email", email("cus_later", "payment_failed"))
    assert await run_once(pool, sender, T0, "w1") == 1
    assert (await available_at(pool, quiet, "email:later"))[1] is None  # within the cache's 5 s: still held
    clock.now += 5.0
    await enqueue(pool, quiet, "email:after", "email", email("cus_after", "payment_failed"))
    assert await run_once(pool, sender, T0, "w1") == 1
    assert (await available_at(pool, quiet, "email:after"))[1] == T0
    wait_for(lambda: len(catcher.messages) >= 2)


async def test_a_tenants_time_zone_places_the_quiet_hours_of_customers_whose_zone_is_unknown(
        pool: Database, tenants_database: str, catcher: CatcherHandle, receiver: Receiver,
        source: tuple[TenantSettingsSource, Clock], senders: list[Sender]) -> None:
    tenant = await make_tenant(tenants_database, {"timezone": "Asia/Tokyo"})  # 23:00 there: night
    sender = Sender(installation(catcher.smtp_url, receiver), tenants=source[0])
    senders.append(sender)
    await enqueue(pool, tenant, "email:tokyo", "email", {**email("cus_tokyo", "payment_failed"), "timezone": None})

    assert await run_once(pool, sender, T0, "w1") == 1

    assert await available_at(pool, tenant, "email:tokyo") == (datetime(2025, 3, 4, 23, tzinfo=UTC), None)  # 08:00


async def test_the_tenants_secrets_appear_in_no_log_line_and_no_repr(
        tenants_database: str, receiver: Receiver, source: tuple[TenantSettingsSource, Clock]) -> None:
    slack, secret = receiver.url("/s-" + uuid.uuid4().hex), "tenant-alert-secret-" + uuid.uuid4().hex
    tenant = await make_tenant(tenants_database, {"alert_channels": {"webhook_url": receiver.url("/h")}},
                               alert_webhook_secret=secret, slack_webhook_url=slack)
    with structlog.testing.capture_logs() as logs:
        settings = await source[0].get(tenant)
        broken = TenantSettingsSource(tenants_database, ("another-master-key-" + "x" * 32,))
        try:
            assert (await broken.get(tenant)) is not None  # unreadable secrets: logged by name, treated as unset
        finally:
            await broken.aclose()
    assert settings is not None and settings.alerts.names == ["slack", "webhook"]
    shown = repr(settings) + str(settings) + json.dumps(logs, default=str)
    assert secret not in shown and slack not in shown
    assert {entry.get("secret") for entry in logs} >= {"slack_webhook_url", "alert_webhook_secret"}
