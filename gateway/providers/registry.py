"""The provider registry: one entry per webhook provider beside Stripe, and everything shared code asks of it.

A provider is a package under `gateway/providers/<name>/` exposing `PROVIDER`, a `WebhookProvider`: how to verify
and read a delivery (`read`: signature → envelope → one `ProviderEvent` per provider event, each normalizing
lazily into canonical InboundEvents), which tenant secrets it uses and the default tenant's values from the
settings, what to answer, whether payrisk may charge through it (`executor`) or only observes (`observe_only`).
The gateway route `POST /webhooks/{provider}[/{tenant}]`, the shards' choice of retry adapter and retry mode,
and the credentials lookup all go through `get(name)`; adding a provider is a package plus one line in `_ENTRIES`.

Stripe predates the registry and keeps its own route and adapter (`gateway/webhooks.py`, `actors/executor.py`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from actors.domain.inbound import InboundEvent

Credentials = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What a provider's `read` may look at: the raw bytes, the headers (lower-case names), the clock."""

    body: bytes
    headers: Mapping[str, str]
    now: float


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """One verified provider event of a delivery. `customer_id` is already the stream key (`customer_key`)."""

    id: str
    type: str
    customer_id: str | None
    normalize: Callable[[], list[InboundEvent]]
    used: bool


@dataclass(frozen=True, slots=True)
class WebhookProvider:
    name: str
    #: verify, then read the envelope; raises SignatureError (store nothing) or PayloadError (answer 400)
    read: Callable[[SignedRequest, Credentials], list[ProviderEvent]]
    #: the tenant secrets it reads (names in `tenant_secrets`); list-valued ones hold several while rotating
    secrets: tuple[str, ...]
    #: the default tenant's credentials, from the settings (other tenants keep theirs in the tenant record)
    defaults: Callable[[Any], dict[str, Any]]
    kept_headers: tuple[str, ...] = ("content-type", "user-agent", "content-length")
    list_secrets: frozenset[str] = frozenset()
    #: the body of a 2xx answer (Adyen wants `[accepted]`); None: payrisk's JSON receipt
    accepted: bytes | None = None
    #: the provider runs its own dunning: classification, analytics, alerts and shadow decisions only
    observe_only: bool = False
    #: "module:Class" of the retry adapter (`actors/executors/`); None: payrisk never charges through it
    executor: str | None = None
    #: the endpoint check some providers make with a GET (Braintree's `bt_challenge`)
    challenge: Callable[[str, Credentials], str] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


_ENTRIES = {
    "adyen": "gateway.providers.adyen:PROVIDER",
    "braintree": "gateway.providers.braintree:PROVIDER",
    "paddle": "gateway.providers.paddle:PROVIDER",
    "generic": "gateway.providers.generic:PROVIDER",
}

NAMES: tuple[str, ...] = tuple(_ENTRIES)


@cache
def get(name: str) -> WebhookProvider | None:
    """The registered provider `name`, or None (an unknown provider: 404)."""
    target = _ENTRIES.get(name)
    if target is None:
        return None
    module, _, attr = target.partition(":")
    provider: WebhookProvider = getattr(importlib.import_module(module), attr)
    return provider


def all_secret_names() -> tuple[str, ...]:
    return tuple(name for provider in NAMES for name in (get(provider).secrets if get(provider) else ()))


def list_secret_names() -> frozenset[str]:
    return frozenset(name for provider in NAMES for name in (get(provider).list_secrets if get(provider) else ()))


def is_observe_only(provider: str) -> bool:
    entry = get(provider)
    return entry is not None and entry.observe_only


def executor_class(provider: str) -> Any | None:
    """The retry adapter class of `provider`, or None when payrisk never charges through it."""
    entry = get(provider)
    if entry is None or entry.executor is None:
        return None
    module, _, attr = entry.executor.partition(":")
    return getattr(importlib.import_module(module), attr)
