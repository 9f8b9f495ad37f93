"""Retry adapters for the providers of the registry (gateway/providers/registry.py), beside Stripe's
(`actors/executor.py`). Each has `charge(customer, charge, intended_at) -> ChargeOutcome`, where `customer` is the
id the provider knows (not the stream key) and `intended_at` the attempt's committed intent time. A call is safe
to repeat for the same attempt: Adyen by its Idempotency-Key, Braintree (which has none) by a lookup of the
subscription's transactions since the intent before any new charge (invariant I3)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from actors.domain.decisions import ChargeRequest
from actors.executor import ChargeOutcome

__all__ = ["ChargeOutcome", "RetryAdapter", "adapter_for"]


class RetryAdapter(Protocol):
    def charge(self, customer: str, charge: ChargeRequest, intended_at: datetime | None) -> ChargeOutcome: ...


def adapter_for(provider: str, credentials: Mapping[str, Any], api_base: str | None) -> RetryAdapter | None:
    """The provider's adapter with these credentials; None when the provider is observe-only or unconfigured."""
    from gateway.providers import registry

    cls = registry.executor_class(provider)
    if cls is None or not cls.is_configured(credentials):
        return None
    adapter: RetryAdapter = cls(credentials, api_base)
    return adapter
