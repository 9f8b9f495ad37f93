"""The whole schedule a strategy would follow if every retry failed the same way (for explain and tests)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from strategies.calendar import Countries
from strategies.model import Strategy
from strategies.network import NetworkLimits
from strategies.planner import RetryPlan, plan_next
from strategies.segments import CustomerProfile


def project(
    strategy: Strategy,
    *,
    category: str,
    reason: str,
    first_failed_at: datetime,
    profile: CustomerProfile,
    segment: str,
    brand: str | None = None,
    visa_category: int | None = None,
    mc_advice_code: str | None = None,
    min_delay_seconds: int = 0,
    seed: int = 0,
    limits: NetworkLimits | None = None,
    earlier_card_attempts: Sequence[datetime] = (),
    countries: Countries | None = None,
    max_steps: int = 32,
) -> list[RetryPlan]:
    """Plan after the first failure, then after each planned retry (failing alike), until a non-retry plan.

    Retry ``n`` uses seed ``seed + n`` so jittered steps differ yet stay reproducible.
    """
    plans: list[RetryPlan] = []
    history = [*earlier_card_attempts, first_failed_at]
    now, made = first_failed_at, 1
    while len(plans) < max_steps:
        plan = plan_next(
            strategy,
            category=category,
            reason=reason,
            attempts_made=made,
            first_failed_at=first_failed_at,
            now=now,
            profile=profile,
            card_history=tuple(history),
            brand=brand,
            visa_category=visa_category,
            mc_advice_code=mc_advice_code,
            min_delay_seconds=min_delay_seconds,
            seed=seed + made,
            limits=limits or NetworkLimits(),
            segment=segment,
            countries=countries,
        )
        plans.append(plan)
        if plan.action != "retry" or plan.at is None:
            break
        now, made = plan.at, made + 1
        history.append(now)
    return plans
