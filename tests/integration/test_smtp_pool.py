"""Pooled SMTP connections against a real aiosmtpd server that counts connections, logins and QUITs: consecutive
sends reuse a connection, a connection the server dropped is replaced once, and no message is ever sent twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as ServerSession
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from pydantic import SecretStr

from actors.notifier.catcher import HOST, free_port
from actors.notifier.email import SmtpSettings, send_message
from actors.notifier.errors import DeliveryError
from actors.notifier.sender import NotifierSettings, Sender
from actors.notifier.smtp_pool import SmtpPool


class MailServer:
    """An aiosmtpd server on 127.0.0.1 that keeps what it receives and misbehaves on request:
    `drop_at_mail` ("silent" or "421") closes the connection at the next MAIL FROM, as a server whose idle timer
    fired just then; `drop_after_data` stores the next message, then closes without answering the DATA."""

    def __init__(self, port: int = 0, password: str | None = None) -> None:
        self.port = port or free_port()
        self.password = password
        self.connections = self.logins = self.quits = 0
        self.messages: list[EmailMessage] = []
        self.drop_at_mail: str | None = None
        self.drop_after_data = False
        auth: dict[str, Any] = {"authenticator": self._authenticate, "auth_require_tls": False} if password else {}
        self._controller = Controller(self, hostname=HOST, port=self.port, **auth)
        self._controller.start()
        self._running = True

    def stop(self) -> None:
        """Stop listening and close every session. Safe to call twice."""
        if self._running:
            self._running = False
            self._controller.stop()

    @property
    def url(self) -> str:
        return f"smtp://user:{self.password}@{HOST}:{self.port}" if self.password else f"smtp://{HOST}:{self.port}"

    @property
    def subjects(self) -> list[str]:
        return [str(message["Subject"]) for message in self.messages]

    def _authenticate(self, server: ServerSession, session: Session, envelope: Envelope, mechanism: str,
                      data: Any) -> AuthResult:
        self.logins += 1
        valid = isinstance(data, LoginPassword) and data.password.decode() == self.password
        return AuthResult(success=valid, handled=False)  # aiosmtpd answers 235 or 535

    async def handle_EHLO(self, server: ServerSession, session: Session, envelope: Envelope,  # noqa: N802
                          hostname: str, responses: list[str]) -> list[str]:
        self.connections += 1  # the client says EHLO once per connection (no STARTTLS here)
        session.host_name = hostname  # what aiosmtpd does itself when no hook is given
        return responses

    async def handle_MAIL(self, server: ServerSession, session: Session, envelope: Envelope,  # noqa: N802
                          address: str, options: list[str]) -> str:
        mode, self.drop_at_mail = self.drop_at_mail, None
        transport = server.transport
        assert transport is not None
        if mode == "silent":
            transport.close()  # nothing of the answer below goes out
        elif mode == "421":
            asyncio.get_running_loop().call_soon(transport.close)  # after the 421 is written
            return "421 4.4.2 payrisk-test Error: timeout exceeded"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: ServerSession, session: Session, envelope: Envelope,  # noqa: N802
                          address: str, options: list[str]) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown"
        if address.startswith("full@"):
            return "452 4.2.2 Mailbox full"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: ServerSession, session: Session, envelope: Envelope) -> str:  # noqa: N802
        assert envelope.original_content is not None and server.transport is not None
        self.messages.append(message_from_bytes(envelope.original_content, policy=email_policy.default))
        if self.drop_after_data:
            self.drop_after_data = False
            server.transport.close()  # the message is stored, the client never hears so
        return "250 Message accepted for delivery"

    async def handle_QUIT(self, server: ServerSession, session: Session, envelope: Envelope) -> str:  # noqa: N802
        self.quits += 1
        return "221 Bye"


def email(n: int, to: str = "ada@example.com") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "billing@payrisk.test"
    message["To"] = to
    message["Subject"] = f"Invoice {n}"
    message["Message-ID"] = f"<payrisk.{n}@payrisk.test>"
    message.set_content(f"Invoice {n} is due.\n")
    return message


@pytest.fixture
def server() -> Iterator[MailServer]:
    made = MailServer()
    yield made
    made.stop()


@pytest.fixture
async def pool() -> AsyncIterator[SmtpPool]:
    made = SmtpPool(max_idle=4)
    yield made
    await made.aclose()


async def test_twenty_emails_in_a_row_share_one_connection_and_all_arrive(server: MailServer,
                                                                          pool: SmtpPool) -> None:
    settings = SmtpSettings.from_url(server.url)
    for n in range(20):
        await send_message(settings, email(n, to=f"customer{n}@example.com"), pool)
    assert server.connections == 1 and server.quits == 0
    assert server.subjects == [f"Invoice {n}" for n in range(20)]
    assert [str(m["To"]) for m in server.messages] == [f"customer{n}@example.com" for n in range(20)]
    assert all(m.get_content().strip() == f"Invoice {n} is due." for n, m in enumerate(server.messages))


async def test_credentials_are_given_once_per_connection_not_once_per_email() -> None:
    server = MailServer(password="s3cret")
    pool = SmtpPool()
    try:
        for n in range(5):
            await send_message(SmtpSettings.from_url(server.url), email(n), pool)
        await pool.aclose()
    finally:
        server.stop()
    assert (server.logins, server.connections, server.quits, len(server.messages)) == (1, 1, 1, 5)


async def test_a_wrong_password_is_still_a_retryable_delivery_error(pool: SmtpPool) -> None:
    server = MailServer(password="s3cret")
    try:
        with pytest.raises(DeliveryError, match="SMTP error 535") as caught:
            await send_message(SmtpSettings.from_url(server.url.replace("s3cret", "wrong")), email(1), pool)
    finally:
        server.stop()
    assert not caught.value.permanent and server.messages == []


async def test_without_a_pool_each_email_has_its_own_connection_as_before(server: MailServer) -> None:
    settings = SmtpSettings.from_url(server.url)
    for n in range(3):
        await send_message(settings, email(n))
    assert (server.connections, server.quits, server.subjects) == (3, 3, ["Invoice 0", "Invoice 1", "Invoice 2"])


async def test_a_restarted_server_costs_one_reconnect_and_the_email_arrives_once(server: MailServer,
                                                                                pool: SmtpPool) -> None:
    settings = SmtpSettings.from_url(server.url)
    await send_message(settings, email(1), pool)
    server.stop()  # closes the pooled connection from the server's side
    restarted = MailServer(port=server.port)
    try:
        await send_message(settings, email(2), pool)
        await send_message(settings, email(3), pool)
    finally:
        restarted.stop()
    assert server.subjects == ["Invoice 1"]
    assert restarted.subjects == ["Invoice 2", "Invoice 3"] and restarted.connections == 1


@pytest.mark.parametrize("drop", ["silent", "421"])
async def test_a_connection_dropped_at_mail_from_is_replaced_once_and_the_email_sent_once(
    server: MailServer, pool: SmtpPool, drop: str
) -> None:
    settings = SmtpSettings.from_url(server.url)
    await send_message(settings, email(1), pool)
    server.drop_at_mail = drop  # the reused connection dies before the transaction starts
    await send_message(settings, email(2), pool)
    assert server.subjects == ["Invoice 1", "Invoice 2"] and server.connections == 2


async def test_a_connection_lost_after_the_message_was_handed_over_is_never_resent(server: MailServer,
                                                                                   pool: SmtpPool) -> None:
    settings = SmtpSettings.from_url(server.url)
    await send_message(settings, email(1), pool)
    server.drop_after_data = True  # the server may have accepted it: sending again could deliver it twice
    with pytest.raises(DeliveryError, match="SMTP unavailable") as caught:
        await send_message(settings, email(2), pool)
    assert not caught.value.permanent  # the outbox retries it later, under the same Message-ID, as before
    assert server.subjects == ["Invoice 1", "Invoice 2"] and server.connections == 1
    await send_message(settings, email(3), pool)
    assert server.subjects[-1] == "Invoice 3" and server.connections == 2


@pytest.mark.parametrize(("to", "permanent"), [("nobody@example.com", True), ("full@example.com", False)])
async def test_a_refused_recipient_raises_the_same_delivery_error_and_the_next_email_goes_out(
    server: MailServer, pool: SmtpPool, to: str, permanent: bool
) -> None:
    settings = SmtpSettings.from_url(server.url)
    await send_message(settings, email(1), pool)
    with pytest.raises(DeliveryError, match="SMTP refused the recipient") as caught:
        await send_message(settings, email(2, to=to), pool)
    assert caught.value.permanent is permanent
    assert server.quits == 1  # the refused session ended politely and was not reused
    await send_message(settings, email(3), pool)
    assert server.subjects == ["Invoice 1", "Invoice 3"] and server.connections == 2


async def test_a_connection_idle_too_long_is_closed_and_a_fresh_one_used(server: MailServer) -> None:
    clock = [1000.0]
    pool = SmtpPool(idle_timeout=30.0, clock=lambda: clock[0])
    settings = SmtpSettings.from_url(server.url)
    try:
        await send_message(settings, email(1), pool)
        clock[0] += 29.0
        await send_message(settings, email(2), pool)
        clock[0] += 31.0
        await send_message(settings, email(3), pool)
    finally:
        await pool.aclose()
    assert server.connections == 2 and len(server.messages) == 3


async def test_concurrent_sends_use_separate_connections_and_at_most_max_idle_stay_open(server: MailServer,
                                                                                       pool: SmtpPool) -> None:
    settings = SmtpSettings.from_url(server.url)
    await asyncio.gather(*(send_message(settings, email(n), pool) for n in range(10)))
    opened = server.connections
    assert pool.idle_count == 4 and server.quits == opened - 4
    await asyncio.gather(*(send_message(settings, email(n), pool) for n in range(10, 14)))
    assert server.connections == opened  # four at once fit in the four kept open
    assert sorted(server.subjects) == sorted(f"Invoice {n}" for n in range(14))
    await pool.aclose()
    assert server.quits == opened and pool.idle_count == 0


async def test_each_server_gets_its_own_connections(server: MailServer, pool: SmtpPool) -> None:
    other = MailServer()
    try:
        for n in range(3):
            await send_message(SmtpSettings.from_url(server.url), email(n), pool)
            await send_message(SmtpSettings.from_url(other.url), email(10 + n), pool)
    finally:
        other.stop()
    assert (server.connections, other.connections) == (1, 1)
    assert (server.subjects, other.subjects) == (["Invoice 0", "Invoice 1", "Invoice 2"],
                                                 ["Invoice 10", "Invoice 11", "Invoice 12"])


def email_row(n: int, customer: str) -> dict[str, Any]:
    payload = {"template": "payment_failed", "to": f"{customer}@example.com", "customer_id": customer,
               "invoice_id": f"in_{n}", "amount_due": 1000, "currency": "usd", "timezone": "UTC",
               "branding": {"name": "Acme", "support_email": "help@acme.test"}}
    return {"outbox_id": n, "tenant_id": "t_pool", "topic": "email", "idempotency_key": f"email:in_{n}:1",
            "attempts": 0, "payload": payload}


async def test_the_senders_batches_reuse_the_connections_and_aclose_quits_them(server: MailServer) -> None:
    sender = Sender(NotifierSettings(smtp_url=SecretStr(server.url), mail_from="billing@payrisk.test"))
    now = datetime(2025, 3, 4, 12, tzinfo=UTC)
    try:
        first = await sender.deliver_many([email_row(n, f"cus_{n}") for n in range(5)], now, {})
        opened = server.connections
        second = await sender.deliver_many([email_row(n, f"cus_{n}") for n in range(5, 10)], now, {})
    finally:
        await sender.aclose()
    assert [r.status for r in first + second] == ["sent"] * 10 and len(server.messages) == 10
    assert server.connections == opened <= 5  # the second batch opened none
    assert server.quits == opened
