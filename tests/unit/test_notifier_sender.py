"""The sender's decisions without a network: deferral, retry with backoff, dead-lettering, HTTP outcomes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from actors.notifier.policy import SendPolicy
from actors.notifier.sender import NotifierSettings, Sender

NOW = datetime(2025, 3, 4, 12, tzinfo=UTC)  # 13:00 in Paris, 07:00 in New York
POLICY = SendPolicy(max_attempts=3, backoff_base=timedelta(seconds=10), backoff_cap=timedelta(minutes=1))


def email_row(attempts: int = 0, **payload: Any) -> dict[str, Any]:
    body = {
        "template": "payment_failed",
        "to": "ada@example.com",
        "customer_id": "cus_1",
        "invoice_id": "in_1",
        "amount_due": 1000,
        "currency": "eur",
        "timezone": "Europe/Paris",
        "branding": {"name": "Acme", "support_email": "help@acme.test"},
    }
    return {
        "outbox_id": 7,
        "tenant_id": "acme",
        "topic": "email",
        "idempotency_key": "email:in_1:1",
        "payload": {**body, **payload},
        "attempts": attempts,
    }


def alert_row() -> dict[str, Any]:
    payload = {
        "kind": "fraud",
        "title": "Fraud flagged",
        "text": "highest_risk_level",
        "severity": "critical",
    }
    return {
        "outbox_id": 8,
        "tenant_id": "acme",
        "topic": "alert",
        "idempotency_key": "fraud:ch_1",
        "payload": payload,
    }


@pytest.fixture
async def offline() -> AsyncIterator[Sender]:
    sender = Sender(NotifierSettings(policy=POLICY))  # no SMTP, no webhooks
    yield sender
    await sender.aclose()


async def test_an_email_in_the_customers_quiet_hours_is_deferred_to_their_morning(offline: Sender) -> None:
    result = await offline.deliver(email_row(timezone="America/New_York"), NOW, [])
    assert result.status == "deferred" and result.retry_at == datetime(2025, 3, 4, 13, tzinfo=UTC)


async def test_a_deferral_does_not_use_up_an_attempt(offline: Sender) -> None:
    result = await offline.deliver(email_row(attempts=2, timezone="America/New_York"), NOW, [])
    assert result.status == "deferred"


async def test_without_a_mail_server_the_email_fails_and_retries_with_backoff(offline: Sender) -> None:
    first = await offline.deliver(email_row(attempts=0), NOW, [])
    second = await offline.deliver(email_row(attempts=1), NOW, [])
    assert (first.status, first.retry_at) == ("failed", NOW + timedelta(seconds=10))
    assert (second.status, second.retry_at) == ("failed", NOW + timedelta(seconds=20))
    assert first.error is not None and "SMTP_URL" in first.error


async def test_the_last_allowed_failure_dead_letters_the_email(offline: Sender) -> None:
    result = await offline.deliver(email_row(attempts=2), NOW, [])
    assert result.status == "dead" and result.retry_at is None


async def test_a_malformed_payload_is_dead_lettered_at_once(offline: Sender) -> None:
    result = await offline.deliver(email_row(amount_due="lots"), NOW, [])
    assert result.status == "dead" and result.error is not None and "amount_due" in result.error


async def test_the_recovered_email_is_not_held_back_by_the_frequency_cap(offline: Sender) -> None:
    busy = [NOW - timedelta(minutes=m) for m in (10, 20, 30)]
    capped = await offline.deliver(email_row(), NOW, busy)
    good_news = await offline.deliver(email_row(template="recovered"), NOW, busy)
    assert capped.status == "deferred"
    assert good_news.status == "failed"  # it tried to send now (and had no server)


async def test_an_alert_with_no_channel_configured_is_not_sent_but_no_channel(offline: Sender) -> None:
    result = await offline.deliver(alert_row(), NOW, [])
    assert (result.status, result.channel, result.template) == ("no_channel", "alert", "fraud")
    assert result.error == result.detail["reason"] == "no alert channel configured"
    assert result.detail["targets"] == "" and result.retry_at is None


def answering(status: int) -> Sender:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, text="nope"))
    settings = NotifierSettings(
        webhook_url="https://hooks.test/payrisk", webhook_secret=SecretStr("s"), policy=POLICY
    )
    return Sender(settings, http=httpx.AsyncClient(transport=transport))


@pytest.mark.parametrize(
    ("status", "outcome"), [(200, "sent"), (503, "failed"), (429, "failed"), (410, "dead")]
)
async def test_webhook_answers_decide_between_done_retry_and_dead(status: int, outcome: str) -> None:
    sender = answering(status)
    result = await sender.deliver(alert_row(), NOW, [])
    await sender.aclose()
    assert result.status == outcome


async def test_a_batch_sends_customers_side_by_side_and_one_customers_emails_in_order(tmp_path: Any) -> None:
    """Different customers' emails go concurrently (real SMTP catcher); the results keep the rows' order, and a
    customer's third email in the batch meets the frequency cap (2 a day) its first two sends filled."""
    from actors.notifier.catcher import start_catcher

    catcher = start_catcher(0, tmp_path / "mail")
    sender = Sender(NotifierSettings(smtp_url=SecretStr(catcher.smtp_url), policy=POLICY))
    try:
        rows = [{**email_row(customer_id=customer, to=f"{customer}@example.com"), "outbox_id": n,
                 "idempotency_key": f"email:in_{n}:1"}
                for n, customer in ((1, "cus_a"), (2, "cus_b"), (3, "cus_a"), (4, "cus_c"), (5, "cus_a"))]
        results = await sender.deliver_many(rows, NOW, {})
    finally:
        await sender.aclose()
        catcher.stop()
    assert [r.outbox_id for r in results] == [1, 2, 3, 4, 5]
    assert [r.status for r in results] == ["sent", "sent", "sent", "sent", "deferred"]
    assert sorted(str(m["To"]) for m in catcher.messages) == ["cus_a@example.com", "cus_a@example.com",
                                                              "cus_b@example.com", "cus_c@example.com"]


async def test_the_catchers_header_view_matches_its_whole_messages(tmp_path: Any) -> None:
    """Mail read for its headers only (the demo's readers) shows the same headers as the whole messages, which
    still carry the rendered parts; each view sees mail caught after it was first read. Without a mail directory
    (a throwaway demo run) nothing is written to disk."""
    from actors.notifier.catcher import start_catcher

    catcher = start_catcher(0, None)
    sender = Sender(NotifierSettings(smtp_url=SecretStr(catcher.smtp_url), policy=POLICY))
    try:
        first = await sender.deliver(email_row(), NOW, [])
        assert [m["To"] for m in catcher.headers] == ["ada@example.com"]
        second = await sender.deliver({**email_row(customer_id="cus_2", to="cus_2@example.com"), "outbox_id": 2,
                                       "idempotency_key": "email:in_2:1"}, NOW, [])
    finally:
        await sender.aclose()
        catcher.stop()
    assert (first.status, second.status) == ("sent", "sent")
    headers, whole = catcher.headers, catcher.messages
    assert [m.items() for m in headers] == [m.items() for m in whole] and len(whole) == 2
    assert all(m.get_body(("plain",)) is not None for m in whole)
    assert all(not m.is_multipart() for m in headers)
    assert catcher.maildir is None and not any(tmp_path.iterdir())
