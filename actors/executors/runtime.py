"""What a shard needs for customers of the registry's providers: their decision context (provider, retry mode),
their retry adapter with the tenant's credentials, and provider-made attempts written to the attempt ledger."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import structlog

from actors.domain.decisions import ChargeRequest, Context
from actors.domain.streams import STRIPE, provider_of
from actors.executors import RetryAdapter, adapter_for
from store import attempts, tenant_secrets
from store.secrets import Keyring, SecretKeyError

log = structlog.get_logger("payrisk.executors")
DEFAULT_TENANT = "default"


def provider_context(ctx: Context, stream_id: str) -> dict[str, Any]:
    """Context fields for the stream's provider; an observe-only provider (Paddle runs its own dunning) never gets
    a charge or an email from payrisk, whatever the tenant's retry mode says."""
    from gateway.providers import registry

    provider = provider_of(stream_id)
    if provider == STRIPE:
        return {}
    mode = "observe" if registry.is_observe_only(provider) else ctx.retry_mode
    return {"provider": provider, "retry_mode": mode, "fetch_details": False}


class ProviderRetries:
    """Retry adapters per (tenant, provider), built from the tenant's own encrypted credentials, else (the default
    tenant only) the installation's settings; rebuilt at most every `ttl` seconds so a rotated key is used soon."""

    def __init__(self, config: dict[str, Any], ttl: float = 10.0) -> None:
        self._defaults: dict[str, dict[str, Any]] = dict(config.get("providers") or {})
        self._keyring = Keyring(tuple(config.get("secret_keys") or ()))
        self._ttl = ttl
        self._cache: dict[tuple[str, str], tuple[float, RetryAdapter | None]] = {}

    async def prepare(self, conn: Any, tenant: str, stream_id: str, charge: ChargeRequest
                      ) -> tuple[RetryAdapter | None, datetime | None]:
        """The adapter, and the attempt's committed intent time (what Braintree's lookup starts from)."""
        intended = await attempts.intended_at(conn, tenant, charge.idempotency_key)
        return await self._adapter(conn, tenant, provider_of(stream_id)), intended

    async def _adapter(self, conn: Any, tenant: str, provider: str) -> RetryAdapter | None:
        hit = self._cache.get((tenant, provider))
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        defaults = self._defaults.get(provider, {})
        credentials = dict(defaults) if tenant == DEFAULT_TENANT else {"api_base": defaults.get("api_base")}
        credentials.update(await self._own(conn, tenant, provider))
        adapter = adapter_for(provider, credentials, credentials.get("api_base"))
        self._cache[(tenant, provider)] = (time.monotonic() + self._ttl, adapter)
        return adapter

    async def _own(self, conn: Any, tenant: str, provider: str) -> dict[str, Any]:
        from gateway.providers import registry

        entry = registry.get(provider)
        if entry is None or not self._keyring.configured:
            return {}
        own: dict[str, Any] = {}
        for name in entry.secrets:
            try:
                value = tenant_secrets.open_row(self._keyring, tenant, name,
                                                await tenant_secrets.sealed_row(conn, tenant, name))
            except SecretKeyError as exc:
                log.error("provider_secret.unreadable", tenant=tenant, name=name, error=str(exc))
                value = None
            if value:
                own[name] = value
        return own


def provider_attempts(tenant: str, customer: str, events: list[dict[str, Any]],
                      cases: dict[str, Any] | None = None) -> list[attempts.Attempt]:
    """Attempts the provider's own retry feature made (Stripe Smart Retries, Braintree's retries, Adyen Auto
    Rescue, Paddle's dunning), as rows of the ledger the network budget reads (written in the same transaction as
    the delivery's decisions, `Decision.ledger`). Written once per provider event and once per (invoice, provider
    attempt number): a redelivery, or Stripe's `invoice.paid` beside `invoice.payment_succeeded`, writes nothing
    twice (migration 0021). The card is the event's, else the case's (a Stripe invoice event rarely carries the
    card's fingerprint)."""
    rows = []
    for event in events:
        if not event.get("provider_attempt") or not event.get("invoice_id"):
            continue
        decline = event.get("decline") or {}
        card = ((cases or {}).get(event["invoice_id"]) or {}).get("card") or {}
        status = "succeeded" if event["kind"] == "payment_succeeded" else "failed"
        rows.append(attempts.Attempt(
            tenant, f"provider:{event['provider']}:{event['provider_event_id']}", customer, event["invoice_id"],
            int(event.get("attempt_count") or 0), event["provider"], status, event.get("amount_due"),
            event.get("currency"), decline.get("card_fingerprint") or card.get("card_fingerprint"),
            decline.get("card_brand") or card.get("card_brand"), event["occurred_at"], event["occurred_at"],
            origin="provider"))
    return rows
