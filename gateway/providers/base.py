"""The two ways a provider delivery can be refused, shared by every provider module.

The gateway translates them once: a `SignatureError` answers 400 and nothing is stored; a `PayloadError` on an
unverified or unparseable envelope answers 400, and on a verified event it quarantines the stored delivery.
"""

from __future__ import annotations


class ProviderError(Exception):
    """A delivery a provider module refuses; `reason` is a short sentence for the problem JSON and log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SignatureError(ProviderError):
    """The body is not proven to come from the provider.

    Reasons come from a small fixed set (never interpolated with request data), so they can label metrics.
    """


class PayloadError(ProviderError):
    """The body cannot be read as a provider event; the reason names the field that is missing or wrong."""
