"""The provider calls a customer home makes after commit: a retry charge (Stripe through its SDK adapter, the other
providers through the registry's retry adapters) and a read of missing decline details (through the classifier
pool when it runs, else directly). Each with the tenant's own key, else the installation's; one SDK client per key.

Nothing here writes: the caller records the answer as the customer's next decision. `crash` is the fault-injection
hook (a test makes the process die right before or after the provider call); it does nothing in production.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from actors.domain.decisions import ChargeRequest, DetailsFetch
from actors.domain.streams import STRIPE, provider_customer_id, provider_of
from actors.executors.runtime import ProviderRetries
from actors.provider_keys import ClientsByKey, ProviderKeys
from store import Database

FETCH_TIMEOUT_SECONDS = 20.0  # the reader's own HTTP timeout is shorter; this bounds a lost pool call


class ProviderCalls:
    def __init__(self, config: dict[str, Any], keys: ProviderKeys, database: Callable[[], Awaitable[Database]], *,
                 classifier: Callable[[], Any] = lambda: None, crash: Callable[[str], None] = lambda _: None) -> None:
        from actors.executor import StripeAdapter, StripeReader

        base = config.get("stripe_api_base")
        self._keys, self._database, self._classifier, self._crash = keys, database, classifier, crash
        self._adapters: ClientsByKey[Any] = ClientsByKey(lambda key: StripeAdapter(key, base))
        self._readers: ClientsByKey[Any] = ClientsByKey(lambda key: StripeReader(key, base))
        self._retries = ProviderRetries(config)  # Adyen, Braintree, …: the registry's retry adapters

    async def charge(self, tenant_id: str, customer_id: str, charge: ChargeRequest) -> Any | None:
        """The provider's answer to the committed attempt (`outcome`, `decline`); None when no provider key is
        configured for the tenant (the attempt stays `intent` and is reconciled later)."""
        if provider_of(customer_id) != STRIPE:
            return await self._charge_elsewhere(tenant_id, customer_id, charge)
        adapter = await self._client(self._adapters, tenant_id)
        if adapter is None:
            return None
        self._crash("before_call")
        result = await asyncio.to_thread(adapter.pay_invoice, charge.invoice_id, charge.idempotency_key,
                                         charge.payment_method_id)
        self._crash("after_call")
        return result

    async def _charge_elsewhere(self, tenant_id: str, customer_id: str, charge: ChargeRequest) -> Any | None:
        """The adapter gets the provider's own customer id and the intent's time, which Braintree's lookup before
        any new charge starts from."""
        db = await self._database()
        async with db.connection() as conn:
            adapter, intended_at = await self._retries.prepare(conn, tenant_id, customer_id, charge)
        if adapter is None:
            return None
        self._crash("before_call")
        result = await asyncio.to_thread(adapter.charge, provider_customer_id(customer_id), charge, intended_at)
        self._crash("after_call")
        return result

    async def final_action(self, tenant_id: str, payload: dict[str, Any], idempotency_key: str) -> bool:
        """Cancel the subscription or mark the invoice uncollectible (`payload["action"]`) with the attempt's
        idempotency key; False when the tenant has no key. Raises on a provider error (the caller retries)."""
        adapter = await self._client(self._adapters, tenant_id)
        if adapter is None:
            return False
        await asyncio.to_thread(adapter.final_action, payload["action"], payload["invoice_id"],
                                payload.get("subscription_id"), idempotency_key)
        return True

    async def details(self, tenant_id: str, customer_id: str, fetch: DetailsFetch) -> Any | None:
        """What a failure lacked, read from the provider; None when there is no key. Raises on a failed read."""
        request = dataclasses.asdict(fetch)
        pool = self._classifier()
        if pool is not None:
            call = pool.enrich.options(enable_task_events=False).remote(tenant_id, "stripe", customer_id, request)
            return await asyncio.wait_for(call, FETCH_TIMEOUT_SECONDS)
        reader = await self._client(self._readers, tenant_id)
        if reader is None:
            return None
        return await asyncio.wait_for(asyncio.to_thread(reader.details, customer_id, request),
                                      FETCH_TIMEOUT_SECONDS)

    async def _client(self, clients: ClientsByKey[Any], tenant_id: str) -> Any | None:
        db = await self._database()
        async with db.connection() as conn:
            key = await self._keys.for_tenant(conn, tenant_id)
        return clients.get(key) if key else None
