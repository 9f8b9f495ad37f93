"""The notifier's errors. Whether a failed send is worth retrying is data on the error, not a broad except."""

from __future__ import annotations


class NotifierConfigError(ValueError):
    """A setting (SMTP_URL, MAIL_FROM, webhook URLs) is missing or malformed; the message names it."""


class DeliveryError(Exception):
    """A send failed. `permanent` errors (a refused mailbox, a 4xx webhook answer) are never retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
