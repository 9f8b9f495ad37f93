"""The decision context of a customer at a moment, read in the customer's transaction: the card's network-budget
history, the providers paused by an open incident, the tenant's retry mode, branding and classification overrides,
whether a provider key can complete missing decline details, and the provider's own retry settings.

Tenant-level reads are cached a few seconds per shard, so a change made through the admin API or the CLI applies
within seconds without a query per decision.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from actors.domain.decisions import Context
from actors.executors.runtime import provider_context
from actors.planning import ContextFactory, make_context_factory, tenant_classifier
from actors.provider_keys import ProviderKeys
from actors.timing import TenantTiming
from store import Conn, attempts, incidents, tenant_records

#: how far back the network retry budget looks
BUDGET_WINDOW = timedelta(days=30)


@dataclasses.dataclass(frozen=True, slots=True)
class TenantState:
    paused: frozenset[str]  # providers with an open incident
    retry_mode: str  # own | observe
    branding: dict[str, Any] | None  # None: the installation's


class TenantContexts:
    """A `actors.home.ContextSource` built from an actor's configuration."""

    def __init__(self, config: dict[str, Any], keys: ProviderKeys, *, ttl: float = 5.0,
                 factory: ContextFactory | None = None) -> None:
        self._factory = factory or make_context_factory(config)
        self._timing = TenantTiming(ttl=float(config.get("timing_refit_seconds", 600.0))) \
            if config.get("planner", "strategies") == "strategies" else None
        self.keys = keys
        self._ttl = ttl
        self._tenants: dict[str, tuple[float, TenantState]] = {}

    async def __call__(self, conn: Conn, tenant_id: str, state: dict[str, Any], now: datetime,
                       history: Mapping[str, list[datetime]] | None = None) -> Context:
        """`history`: the customer's card history when the caller read it already (`card_histories`)."""
        if history is None:
            history = await attempts.card_history(conn, tenant_id, fingerprints(state), now - BUDGET_WINDOW)
        tenant = await self.tenant(conn, tenant_id)
        await tenant_classifier(conn, tenant_id)  # the tenant's stored overrides, refreshed every few seconds
        ctx = await self._factory(tenant_id, now, history, tenant.paused, tenant.retry_mode, tenant.branding)
        ctx = dataclasses.replace(ctx, fetch_details=bool(await self.keys.for_tenant(conn, tenant_id)))
        if self._timing is not None:  # the strategies planner, with the tenant's own learned retry timing
            ctx = dataclasses.replace(ctx, planner=await self._timing.planner(conn, tenant_id, now))
        return dataclasses.replace(ctx, **provider_context(ctx, state["customer_id"]))

    async def card_histories(self, conn: Conn, customers: Sequence[tuple[str, dict[str, Any]]],
                             now: datetime) -> CardHistories:
        """The card histories of a batch's customers `(tenant, state)`, one query per tenant."""
        cards: dict[str, set[str]] = {}
        for tenant_id, state in customers:
            cards.setdefault(tenant_id, set()).update(fingerprints(state))
        found: dict[tuple[str, str], list[datetime]] = {}
        for tenant_id, wanted in cards.items():
            history = await attempts.card_history(conn, tenant_id, sorted(wanted), now - BUDGET_WINDOW)
            found.update(((tenant_id, card), times) for card, times in history.items())
        return CardHistories(found)

    async def tenant(self, conn: Conn, tenant_id: str) -> TenantState:
        cached = self._tenants.get(tenant_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        paused = frozenset(str(i.get("provider")) for i in await incidents.open_incidents(conn, tenant_id))
        row = await tenant_records.get(conn, tenant_id)
        branding = (row["settings"] or {}).get("branding") if row else None
        found = TenantState(paused, str(row["retry_mode"]) if row else "own",
                            branding if isinstance(branding, dict) else None)
        self._tenants[tenant_id] = (time.monotonic() + self._ttl, found)
        return found


@dataclasses.dataclass(frozen=True, slots=True)
class CardHistories:
    """Past attempts per (tenant, card fingerprint) within the budget window, read for a whole batch at the start of
    its transaction instead of once per customer. Valid for a customer only while the transaction has written no
    attempt on its cards (`actors.persist.Writes.touches`)."""

    found: dict[tuple[str, str], list[datetime]]

    def of(self, tenant_id: str, state: dict[str, Any]) -> tuple[list[str], dict[str, list[datetime]]]:
        """The customer's card fingerprints and their history, as `attempts.card_history` would read it."""
        cards = fingerprints(state)
        return cards, {card: self.found[(tenant_id, card)] for card in cards if (tenant_id, card) in self.found}


def fingerprints(state: dict[str, Any]) -> list[str]:
    cards = (c["card"].get("card_fingerprint") for c in state["cases"].values())
    return sorted({fingerprint for fingerprint in cards if fingerprint})
