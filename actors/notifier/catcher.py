"""A development SMTP catcher: an aiosmtpd server on 127.0.0.1 that keeps every message it receives.

Messages are written to `maildir` as numbered `.eml` files (open them with any mail client) and kept in
memory for tests; without a `maildir` (a throwaway demo run) they are only kept in memory. It accepts any
sender, recipient and no authentication: never expose it.
"""

from __future__ import annotations

import socket
import threading
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any, cast

from aiosmtpd.controller import Controller

HOST = "127.0.0.1"


class _MaildirHandler:
    """aiosmtpd handler: store each DATA in memory (and as a file, given a mail directory). Runs on the controller's
    thread.

    Messages are kept as received and parsed when read (`parsed`), once each: whole for `messages`, headers only
    for `headers` (a tenth of the cost: the demo's readers look at two headers of thousands of emails)."""

    def __init__(self, maildir: Path | None) -> None:
        self.maildir = maildir
        self.raw: list[bytes] = []
        self._parsed: dict[bool, list[EmailMessage]] = {True: [], False: []}
        self.lock = threading.Lock()
        self.counter = len(list(maildir.glob("*.eml"))) if maildir else 0  # continue numbering across restarts

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 — aiosmtpd hook
        raw: bytes = envelope.original_content or envelope.content
        with self.lock:
            self.counter += 1
            if self.maildir is not None:
                (self.maildir / f"{self.counter:06d}.eml").write_bytes(raw)
            self.raw.append(raw)
        return "250 Message accepted for delivery"

    def parsed(self, whole: bool) -> list[EmailMessage]:
        """Every message so far, oldest first: parsed whole, or only its headers. The parsing happens outside the
        lock, so that mail keeps arriving meanwhile."""
        with self.lock:
            done = self._parsed[whole]
            start, new = len(done), self.raw[len(done):]
        if whole:
            fresh = [message_from_bytes(data, policy=email_policy.default) for data in new]
        else:
            parser = BytesHeaderParser(policy=email_policy.default)  # its messages are EmailMessage
            fresh = [parser.parsebytes(data) for data in new]
        with self.lock:
            if len(done) == start:  # else another reader parsed the same ones meanwhile
                done.extend(cast(list[EmailMessage], fresh))
            return list(done)


class CatcherHandle:
    """A running catcher. `stop()` frees the port; the `.eml` files stay."""

    def __init__(self, controller: Controller, handler: _MaildirHandler, port: int) -> None:
        self._controller, self._handler, self.port = controller, handler, port
        self.host = HOST
        self.maildir = handler.maildir
        self._stopped = False

    @property
    def smtp_url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @property
    def messages(self) -> list[EmailMessage]:
        """A snapshot of the messages received so far, oldest first."""
        return self._handler.parsed(whole=True)

    @property
    def headers(self) -> list[EmailMessage]:
        """The same messages with their headers only (no body parts): cheaper when only headers are read."""
        return self._handler.parsed(whole=False)

    def stop(self) -> None:
        """Stop listening. Safe to call twice."""
        if not self._stopped:
            self._stopped = True
            self._controller.stop()


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def start_catcher(port: int, maildir: str | Path | None) -> CatcherHandle:
    """Start catching mail on 127.0.0.1:`port` (0 picks a free port) into `maildir` (created if needed; None: in
    memory only)."""
    directory = Path(maildir) if maildir is not None else None
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    handler = _MaildirHandler(directory)
    chosen = port or free_port()
    controller = Controller(handler, hostname=HOST, port=chosen, server_hostname="payrisk-catcher")
    controller.start()
    return CatcherHandle(controller, handler, chosen)
