"""Adyen Standard webhooks: the HMAC of every NotificationRequestItem, checked by the official `Adyen` library,
and the optional Basic auth Adyen sends when the Customer Area has a user name and password for the webhook."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from Adyen.util import is_valid_hmac_notification

from gateway.providers.base import SignatureError


class AdyenSignatureReason(StrEnum):
    NO_KEY = "no Adyen HMAC key is configured for this tenant"
    BAD_KEY = "a configured Adyen HMAC key is not hexadecimal"
    MISSING = "a notification item has no additionalData.hmacSignature"
    MISMATCH = "no configured HMAC key matches a notification item"
    BASIC_AUTH = "the Basic auth credentials are missing or wrong"


def check_basic_auth(header: str | None, expected: str | None) -> None:
    """`expected` is `user:password` (None: Basic auth is not required)."""
    if not expected:
        return
    scheme, _, value = (header or "").partition(" ")
    try:
        given = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(AdyenSignatureReason.BASIC_AUTH) from None
    if scheme.lower() != "basic" or not hmac.compare_digest(given, expected.encode()):
        raise SignatureError(AdyenSignatureReason.BASIC_AUTH)


def verify_item(item: Mapping[str, Any], keys: Sequence[str]) -> None:
    """Return if the item's `hmacSignature` matches any key (several while rotating); the SDK builds the signing
    string (pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success)
    and compares in constant time."""
    usable = [key.strip() for key in keys if key.strip()]
    if not usable:
        raise SignatureError(AdyenSignatureReason.NO_KEY)
    additional = item.get("additionalData")
    if not isinstance(additional, dict) or not additional.get("hmacSignature"):
        raise SignatureError(AdyenSignatureReason.MISSING)
    signed = dict(item)
    if not isinstance(signed.get("amount"), dict):  # no amount: both value and currency sign as empty strings
        signed["amount"] = {"value": "", "currency": ""}
    if not any(_sdk_accepts(signed, key) for key in usable):
        raise SignatureError(AdyenSignatureReason.MISMATCH)


def _sdk_accepts(item: dict[str, Any], key: str) -> bool:
    try:
        return bool(is_valid_hmac_notification(item, key))
    except binascii.Error:
        raise SignatureError(AdyenSignatureReason.BAD_KEY) from None
    except (TypeError, ValueError, KeyError):
        return False
