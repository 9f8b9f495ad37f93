"""A development SMTP catcher: an aiosmtpd server on 127.0.0.1 that keeps every message it receives.

Messages are written to `maildir` as numbered `.eml` files (open them with any mail client) and kept in
memory for tests. It accepts any sender, recipient and no authentication: never expose it.
"""

from __future__ import annotations

import socket
import threading
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

HOST = "127.0.0.1"


class _MaildirHandler:
    """aiosmtpd handler: store each DATA as a file and in memory. Runs on the controller's thread."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()
        self.counter = len(list(maildir.glob("*.eml")))  # continue numbering across restarts

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 — aiosmtpd hook
        raw: bytes = envelope.original_content or envelope.content
        message = message_from_bytes(raw, policy=email_policy.default)
        with self.lock:
            self.counter += 1
            (self.maildir / f"{self.counter:06d}.eml").write_bytes(raw)
            self.messages.append(message)
        return "250 Message accepted for delivery"


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
        with self._handler.lock:
            return list(self._handler.messages)

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


def start_catcher(port: int, maildir: str | Path) -> CatcherHandle:
    """Start catching mail on 127.0.0.1:`port` (0 picks a free port) into `maildir` (created if needed)."""
    directory = Path(maildir)
    directory.mkdir(parents=True, exist_ok=True)
    handler = _MaildirHandler(directory)
    chosen = port or free_port()
    controller = Controller(handler, hostname=HOST, port=chosen, server_hostname="payrisk-catcher")
    controller.start()
    return CatcherHandle(controller, handler, chosen)
