"""Braintree webhooks: form-encoded `bt_signature` / `bt_payload`, verified and parsed by the official `braintree`
SDK (`WebhookNotification.parse`: HMAC-SHA1 keyed with SHA1(private key), public-key pairs), and the endpoint's
verification challenge (`WebhookNotification.verify`)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs

import braintree
from braintree.exceptions.invalid_challenge_error import InvalidChallengeError
from braintree.exceptions.invalid_signature_error import InvalidSignatureError

from gateway.providers.base import PayloadError, SignatureError


class BraintreeSignatureReason(StrEnum):
    NO_KEYS = "no Braintree public and private key is configured for this tenant"
    MISSING = "the body has no bt_signature and bt_payload form fields"
    MISMATCH = "bt_signature does not match bt_payload for the configured keys"


def gateway_for(credentials: Mapping[str, Any]) -> braintree.BraintreeGateway:
    """An SDK gateway for webhook work only (no API call is made with it)."""
    public, private = credentials.get("braintree_public_key"), credentials.get("braintree_private_key")
    if not public or not private:
        raise SignatureError(BraintreeSignatureReason.NO_KEYS)
    environment = braintree.Environment.Production if credentials.get("braintree_environment") == "production" \
        else braintree.Environment.Sandbox
    return braintree.BraintreeGateway(braintree.Configuration(
        environment, merchant_id=credentials.get("braintree_merchant_id") or "payrisk", public_key=public,
        private_key=private))


def form_fields(raw_body: bytes) -> tuple[str, str]:
    try:
        form = parse_qs(raw_body.decode("ascii"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise SignatureError(BraintreeSignatureReason.MISSING) from None
    signature, payload = form.get("bt_signature"), form.get("bt_payload")
    if not signature or not payload or not signature[0] or not payload[0]:
        raise SignatureError(BraintreeSignatureReason.MISSING)
    return signature[0], payload[0]


def parse(raw_body: bytes, credentials: Mapping[str, Any]) -> tuple[str, Any]:
    """(bt_payload, the SDK's WebhookNotification) once the signature is proven; SignatureError otherwise."""
    signature, payload = form_fields(raw_body)
    gateway = gateway_for(credentials)
    try:
        return payload, gateway.webhook_notification.parse(signature, payload)
    except InvalidSignatureError:
        raise SignatureError(BraintreeSignatureReason.MISMATCH) from None
    except Exception as exc:  # noqa: BLE001 - signed, but the XML inside does not parse: a bad payload
        raise PayloadError(f"bt_payload is signed but unreadable: {type(exc).__name__}") from None


def answer_challenge(challenge: str, credentials: Mapping[str, Any]) -> str:
    """`public_key|hex(HMAC-SHA1(SHA1(private_key), challenge))`, as Braintree expects; PayloadError if malformed."""
    try:
        return str(gateway_for(credentials).webhook_notification.verify(challenge))
    except InvalidChallengeError:
        raise PayloadError("bt_challenge must be 20 to 32 lower-case hex characters") from None
