"""Which provider a customer stream belongs to.

A customer's home (its event stream, checkpoint, shard and timers) is keyed by `customer_key(provider, id)`.
Stripe keeps the bare provider id, so every stream written before other providers existed is still the same
stream; every other provider's ids are prefixed with the provider (`adyen:shopper-42`). A Stripe id never holds a
colon (`cus_…`), so the two can never collide, and the same id under two providers is two customers.
"""

from __future__ import annotations

STRIPE = "stripe"


def customer_key(provider: str, provider_customer_id: str) -> str:
    """The stream id of `provider_customer_id` at `provider`."""
    return provider_customer_id if provider == STRIPE else f"{provider}:{provider_customer_id}"


def provider_of(stream_id: str) -> str:
    """The provider whose customer the stream is (`stripe` for a bare id)."""
    head, sep, _ = stream_id.partition(":")
    return head if sep else STRIPE


def provider_customer_id(stream_id: str) -> str:
    """The id the provider itself knows the customer by."""
    head, sep, rest = stream_id.partition(":")
    return rest if sep else head
