"""Open SMTP connections kept between sends: one per send at a time, reused by the next send to the same server.

A fresh connection costs TCP, the greeting, EHLO, STARTTLS and AUTH before the first MAIL FROM; a reused one goes
straight to MAIL FROM. Connections are keyed by the whole `SmtpSettings` (host, port, TLS mode, credentials,
timeout), so a changed SMTP_URL never gets another server's connection.

A message is never submitted twice by this pool: a send is retried (once, on a fresh connection) only when a
reused connection turns out to be dead before the server accepted MAIL FROM, i.e. before any transaction began.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import TYPE_CHECKING, Any

import aiosmtplib

if TYPE_CHECKING:  # email.py imports this module
    from actors.notifier.email import SmtpSettings

#: `Sender.deliver_many` sends one email per customer of a batch at once, and the dispatcher claims up to 50 rows
#: a batch (`dispatch.run_once`): keep that many so the next batch finds its connections open. Never more are open
#: than a batch opened anyway; idle ones close after `IDLE_TIMEOUT`.
DEFAULT_MAX_IDLE = 50
#: Seconds a connection may sit unused: below the idle timeouts of common servers (Postfix's is 300 s), short
#: enough that a quiet notifier holds nothing open for long.
IDLE_TIMEOUT = 30.0
#: A QUIT answers at once or the server is gone: closing never waits the full SMTP timeout for it.
_QUIT_TIMEOUT = 5.0
#: 421: the server is closing the connection (RFC 5321 §3.8), as Postfix says when its idle timer fires.
_CLOSING = 421


class _Client(aiosmtplib.SMTP):
    """An aiosmtplib client that notes whether the server accepted MAIL FROM in the current send."""

    mail_accepted = False

    async def mail(self, sender: str, /, **options: Any) -> aiosmtplib.SMTPResponse:
        response = await super().mail(sender, **options)
        self.mail_accepted = True
        return response


@dataclass
class _Idle:
    client: _Client
    since: float


def is_stale(error: BaseException, client: _Client) -> bool:
    """A reused connection the server had already dropped: nothing of this message reached a transaction."""
    if client.mail_accepted:
        return False
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return error.code == _CLOSING
    return isinstance(error, ConnectionError)  # SMTPServerDisconnected and a reset socket


class SmtpPool:
    """Idle SMTP connections per server settings. One per process or event loop (clients bind to the loop that
    connected them); `aclose()` when done. `max_idle=0` keeps none: one connection per message."""

    def __init__(self, max_idle: int = DEFAULT_MAX_IDLE, idle_timeout: float = IDLE_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._max_idle, self._idle_timeout, self._clock = max_idle, idle_timeout, clock
        self._idle: dict[SmtpSettings, list[_Idle]] = {}
        self._closed = False

    async def send(self, settings: SmtpSettings, message: Message) -> None:
        """Submit `message`; raises aiosmtplib's errors (and OSError) as `aiosmtplib.send` does.

        Retried once on a fresh connection when a reused one proved dead before MAIL FROM was accepted (see
        `is_stale`); any other failure, or one after MAIL FROM, is raised: the caller's retry decides.
        """
        client = self._take(settings)
        if client is not None:
            try:
                await self._send_on(settings, client, message)
                return
            except (aiosmtplib.SMTPException, OSError) as error:
                if not is_stale(error, client):
                    raise
        await self._send_on(settings, await _connect(settings), message)

    async def aclose(self) -> None:
        """QUIT every idle connection; connections in use close when their send ends. Safe to call twice."""
        self._closed = True
        idle = [entry.client for entries in self._idle.values() for entry in entries]
        self._idle.clear()
        await asyncio.gather(*(_quit(client) for client in idle))

    @property
    def idle_count(self) -> int:
        return sum(len(entries) for entries in self._idle.values())

    def _take(self, settings: SmtpSettings) -> _Client | None:
        """The most recently used live connection to this server; expired or dropped ones are closed on the way.
        No await in here: two concurrent sends never get the same client."""
        entries = self._idle.get(settings, [])
        while entries:
            entry = entries.pop()
            if entry.client.is_connected and self._clock() - entry.since <= self._idle_timeout:
                return entry.client
            entry.client.close()  # no QUIT: the server may be gone, and a send is waiting
        return None

    async def _send_on(self, settings: SmtpSettings, client: _Client, message: Message) -> None:
        """Send over `client`; back to the pool on success, never after a failure."""
        client.mail_accepted = False
        try:
            await client.send_message(message)
        except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
            await _quit(client)  # the server answered: end the session politely, as `aiosmtplib.send` does
            raise
        except BaseException:  # a lost, timed-out or cancelled send leaves the session in doubt
            client.close()
            raise
        await self._release(settings, client)

    async def _release(self, settings: SmtpSettings, client: _Client) -> None:
        entries = self._idle.setdefault(settings, [])
        if self._closed or len(entries) >= self._max_idle or not client.is_connected:
            await _quit(client)
            return
        entries.append(_Idle(client, self._clock()))


async def _connect(settings: SmtpSettings) -> _Client:
    """Connect, EHLO, STARTTLS and AUTH as the settings say (aiosmtplib does them in `connect`)."""
    client = _Client(
        hostname=settings.host,
        port=settings.port,
        username=settings.username,
        password=settings.password.get_secret_value() if settings.password else None,
        use_tls=settings.use_tls,
        start_tls=settings.start_tls,
        timeout=settings.timeout,
    )
    await client.connect()  # closes the client itself when it fails
    return client


async def _quit(client: _Client) -> None:
    """Say goodbye if the server still listens; close in any case."""
    if client.is_connected:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await client.quit(timeout=min(client.timeout or _QUIT_TIMEOUT, _QUIT_TIMEOUT))
    client.close()
