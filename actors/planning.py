"""Build the decision context a shard passes to the pure core: clock value, classifier, planner, tenant mode."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from actors.domain.decisions import Context, Planner
from actors.domain.default_planner import DefaultPlanner

ContextFactory = Callable[[str, datetime, Mapping[str, Sequence[datetime]], frozenset[str], str],
                          Awaitable[Context]]


def make_context_factory(config: dict[str, Any]) -> ContextFactory:
    planner = make_planner(config.get("planner", "strategies"))
    branding = dict(config.get("branding", {"name": "payrisk", "support_email": "support@payrisk.local",
                                             "logo_url": None}))

    async def build(tenant_id: str, now: datetime, history: Mapping[str, Sequence[datetime]],
                    paused: frozenset[str], retry_mode: str) -> Context:
        """`retry_mode` is the tenant's (tenants.retry_mode): `own` charges, `observe` records shadow decisions."""
        return Context(now=now, classify=classifier_for(tenant_id), planner=planner, retry_mode=retry_mode,
                       card_history=history, branding=branding, paused_providers=paused)

    return build


def make_planner(name: str) -> Planner:
    if name == "default":
        return DefaultPlanner()
    from actors.domain.strategy_planner import StrategyPlanner

    return StrategyPlanner()


@lru_cache(maxsize=256)
def classifier_for(tenant_id: str) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    """The pure classification function bound to the tenant's tables (with its overrides)."""
    from actors.domain.classification import classify, default_tables
    from actors.domain.inbound import DeclineInfo

    tables = default_tables().for_tenant(tenant_id)
    fields = set(DeclineInfo.model_fields)

    def run(provider: str, decline: dict[str, Any]) -> dict[str, Any]:
        info = DeclineInfo(**{k: v for k, v in decline.items() if k in fields})
        return classify(provider, info, tables).model_dump(mode="json")  # type: ignore[no-any-return]

    return run
