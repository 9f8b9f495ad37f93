"""Each tenant's learned retry timing on the live platform: the published prior (strategies/timing_prior.json)
refitted from the tenant's own attempt ledger — every settled retry we made, against its invoice's first
classified failure (reason × days since × local hour × attempts) — and shrunk toward the prior while data is thin.

A shard refits a tenant at most every `ttl` seconds from the last `window` of history and hands the planner that
uses it to the decision context; decisions record the model they used (`retry_timing vN, K ledger attempts`), so
replay stays deterministic. `payrisk whatif` fits its outcome model with the same function.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from actors.domain.strategy_planner import StrategyPlanner
from store import Conn, history
from store.history import FirstFailure, LedgerAttempt
from strategies.calendar import default_countries
from strategies.learned import Observation, Slot, TimingModel, default_prior, fit


def outcome_model(rows: Sequence[LedgerAttempt], failures: Sequence[FirstFailure]) -> TimingModel:
    """Our settled attempts against their invoice's first failure: reason × days since × local hour × attempts."""
    first = {f.invoice_id: f for f in failures}
    observations = []
    for row in rows:
        f = first.get(row.invoice_id)
        if f is None or row.origin != "payrisk" or row.status not in ("succeeded", "failed"):
            continue
        local = row.intended_at.astimezone(default_countries().of(f.card_country).zone())
        slot = Slot(f.reason, None, (row.intended_at - f.at).total_seconds() / 86400, local.hour, local.day,
                    row.attempt_no)
        observations.append(Observation(slot, row.status == "succeeded"))
    return fit(default_prior(), observations)


class TenantTiming:
    """The planner each tenant decides with, its timing refitted from the tenant's ledger every `ttl` seconds."""

    def __init__(self, *, ttl: float = 600.0, window: timedelta = timedelta(days=180)) -> None:
        self._ttl, self._window = ttl, window
        self._planners: dict[str, tuple[float, StrategyPlanner]] = {}

    async def planner(self, conn: Conn, tenant_id: str, now: datetime) -> StrategyPlanner:
        cached = self._planners.get(tenant_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        since = now - self._window
        model = outcome_model(await history.ledger(conn, tenant_id, since=since),
                              await history.first_failures(conn, tenant_id, since=since - timedelta(days=60)))
        planner = StrategyPlanner(timing=model)
        self._planners[tenant_id] = (time.monotonic() + self._ttl, planner)
        return planner
