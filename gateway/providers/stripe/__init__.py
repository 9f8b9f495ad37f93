"""Stripe webhooks: signature verification with the official SDK, and normalization into InboundEvents.

The gateway calls, in order: `verify` (raw bytes, `Stripe-Signature`) → `parse_envelope` → `customer_id_of`
(routing) → `normalize`. Errors: `SignatureError` (answer 400, store nothing) and `PayloadError` (answer 400
before the envelope is read; quarantine a verified event that cannot be normalized).
"""

from gateway.providers.base import PayloadError, SignatureError
from gateway.providers.stripe.envelope import StripeEnvelope, customer_id_of, parse_envelope
from gateway.providers.stripe.events import EVENT_TYPES, normalize
from gateway.providers.stripe.inbound import PROVIDER
from gateway.providers.stripe.signature import SignatureReason, verify

__all__ = [
    "EVENT_TYPES",
    "PROVIDER",
    "PayloadError",
    "SignatureError",
    "SignatureReason",
    "StripeEnvelope",
    "customer_id_of",
    "normalize",
    "parse_envelope",
    "verify",
]
