"""Gauges that stay true: read from PostgreSQL (the source of truth) on a timer, not set inside decisions.

Each gateway process refreshes them every `PAYRISK_METRICS_INTERVAL` seconds (default 15) with a handful of
indexed queries: open cases and revenue at risk from the `case_facts` read model (partial index, migration 0030),
the undispatched delivery backlog, overdue timers and the outbox. A failed refresh keeps the last values, counts
`payrisk_gauge_refresh_errors_total` and leaves `payrisk_gauges_refreshed_timestamp_seconds` behind: a stale
refresh is itself visible. With several workers the samples merge as `livemax` (every worker reads the same
database; dead workers drop out)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog
from prometheus_client import Counter, Gauge

from actors.domain.analytics import LOST_STATES, OPEN_STATES
from store import Database
from store import status as platform_status

log = structlog.get_logger("payrisk.gauges")

MODE: Any = "livemax"
OPEN_CASES = Gauge("payrisk_open_cases", "Open recovery cases (case_facts)", ["tenant"], multiprocess_mode=MODE)
ACTIVE_CUSTOMERS = Gauge("payrisk_active_customers", "Customers with at least one open recovery case",
                         ["tenant"], multiprocess_mode=MODE)
REVENUE_AT_RISK = Gauge("payrisk_revenue_at_risk", "Amount due of open cases, in minor units",
                        ["tenant", "currency"], multiprocess_mode=MODE)
RECOVERED = Gauge("payrisk_recovered_revenue", "Recovered amount of all cases so far, in minor units",
                  ["tenant", "currency"], multiprocess_mode=MODE)
CASES = Gauge("payrisk_cases", "Recovery cases by outcome (open, recovered, lost)", ["tenant", "outcome"],
              multiprocess_mode=MODE)
BACKLOG = Gauge("payrisk_delivery_backlog", "Stored deliveries not yet applied by their customer's home",
                ["status"], multiprocess_mode=MODE)
BACKLOG_AGE = Gauge("payrisk_delivery_backlog_oldest_seconds", "Age of the oldest delivery not yet applied",
                    multiprocess_mode=MODE)
TIMERS_DUE = Gauge("payrisk_timers_due", "Timers due and not yet fired", multiprocess_mode=MODE)
TIMER_LAG = Gauge("payrisk_timer_lag_seconds", "How late the most overdue unfired timer is (0: none overdue)",
                  multiprocess_mode=MODE)
OUTBOX_DEPTH = Gauge("payrisk_outbox_depth", "Outbox messages not yet sent (dead ones excluded)", ["topic"],
                     multiprocess_mode=MODE)
OUTBOX_DEAD = Gauge("payrisk_outbox_dead", "Outbox messages given up on", multiprocess_mode=MODE)
REFRESHED = Gauge("payrisk_gauges_refreshed_timestamp_seconds", "When the gauges were last read from PostgreSQL",
                  multiprocess_mode=MODE)
REFRESH_ERRORS = Counter("payrisk_gauge_refresh_errors_total", "Gauge refreshes that failed")

BACKLOG_STATUSES = ("received", "dispatched")
OUTCOMES = ("open", "recovered", "lost")

async def refresh(db: Database) -> dict[str, Any]:
    """Read every gauge from the database once and set it. Returns what was read (for tests and `doctor`)."""
    readings = await platform_status.read(db, OPEN_STATES, LOST_STATES)
    open_rows, active, closed_rows = readings.open_cases, readings.active_customers, readings.closed
    backlog, timers, outbox, dead = readings.backlog, readings.timers_due, readings.outbox_depth, readings.outbox_dead
    open_by_tenant: dict[str, int] = {}
    outcomes: dict[tuple[str, str], int] = {}
    at_risk = {(str(t), str(c)): (int(n), float(amount)) for t, c, n, amount in open_rows}
    for tenant, currency, recovered_cases, recovered, lost in closed_rows:
        # every (tenant, currency) that ever had a case: one whose open cases are all settled reads 0
        open_cases, amount = at_risk.get((tenant, currency), (0, 0.0))
        open_by_tenant[tenant] = open_by_tenant.get(tenant, 0) + open_cases
        REVENUE_AT_RISK.labels(tenant, currency).set(amount)
        RECOVERED.labels(tenant, currency).set(float(recovered))
        for outcome, count in zip(OUTCOMES, (open_cases, recovered_cases, lost), strict=True):
            outcomes[(tenant, outcome)] = outcomes.get((tenant, outcome), 0) + int(count)
    for tenant, count in open_by_tenant.items():
        OPEN_CASES.labels(tenant).set(count)
    for (tenant, outcome), count in outcomes.items():
        CASES.labels(tenant, outcome).set(count)
    active_by_tenant = {str(tenant): int(count) for tenant, count in active}
    for tenant in open_by_tenant:
        ACTIVE_CUSTOMERS.labels(tenant).set(active_by_tenant.get(tenant, 0))
    waiting = {status: (int(count), float(age or 0)) for status, count, age in backlog}
    for status in BACKLOG_STATUSES:
        BACKLOG.labels(status).set(waiting.get(status, (0, 0.0))[0])
    BACKLOG_AGE.set(max((age for _, age in waiting.values()), default=0.0))
    TIMERS_DUE.set(int(timers[0]))
    TIMER_LAG.set(max(0.0, float(timers[1])))
    depth = {str(topic): int(count) for topic, count in outbox}
    for topic in {*depth, *_seen_topics}:
        OUTBOX_DEPTH.labels(topic).set(depth.get(topic, 0))
    _seen_topics.update(depth)
    OUTBOX_DEAD.set(dead)
    REFRESHED.set(time.time())
    return {"open_cases": open_by_tenant, "active_customers": active_by_tenant,
            "backlog": {s: waiting.get(s, (0, 0.0))[0] for s in BACKLOG_STATUSES}, "timers_due": int(timers[0]),
            "timer_lag_seconds": max(0.0, float(timers[1])), "outbox_depth": depth, "outbox_dead": dead}


_seen_topics: set[str] = set()


class GaugeRefresher:
    """The timer: refresh at once on start, then every `interval` seconds, until stopped."""

    def __init__(self, db: Database, interval: float = 15.0) -> None:
        self._db = db
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.interval > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await refresh(self._db)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep the last values; the staleness is itself exported
                REFRESH_ERRORS.inc()
                log.warning("gauges.refresh_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
