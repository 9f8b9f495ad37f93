"""Custom metrics exported through Ray (`ray.util.metrics`; scraped from each node's metrics port with a
`ray_` prefix). Tags never carry customer ids: cardinality stays bounded."""

from __future__ import annotations

from collections import Counter as Tally
from functools import cache
from typing import Any

from ray.util.metrics import Counter, Gauge, Histogram


class EngineMetrics:
    def __init__(self, shard: str) -> None:
        self.shard = shard
        self.applied = Counter("payrisk_deliveries_applied", "Deliveries applied to customer state",
                               tag_keys=("provider",))
        self.failures = Counter("payrisk_failures", "Classified payment failures", tag_keys=("provider", "category"))
        self.retries = Counter("payrisk_retries", "Retry attempts by outcome", tag_keys=("outcome",))
        self.recovered = Counter("payrisk_recovered_amount", "Recovered amount in minor units",
                                 tag_keys=("currency",))
        self.to_checkpoint = Histogram(
            "payrisk_webhook_to_checkpoint_seconds",
            "From a webhook stored (and acknowledged) to its decision committed in the customer's checkpoint",
            boundaries=[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60])
        # what this shard holds in memory (set every few seconds by the shard's own timer); the platform-wide
        # figures (open cases, revenue at risk) are the gateway's gauges, read from PostgreSQL
        self.active = Gauge("payrisk_shard_active_customers", "Customers active in a shard's memory",
                            tag_keys=("shard",))
        self.open_cases = Gauge("payrisk_shard_open_cases", "Open recovery cases among a shard's active customers",
                                tag_keys=("shard",))

    def record(self, events: list[tuple[str, dict[str, Any]]], provider: str = "stripe") -> None:
        """Count what one committed decision recorded."""
        for event_type, payload in events:
            if event_type == "FailureClassified":
                category = str((payload.get("classification") or {}).get("category"))
                self.failures.inc(1, {"provider": provider, "category": category})
            elif event_type in ("AttemptSucceeded", "AttemptFailed", "AttemptUnknown"):
                self.retries.inc(1, {"outcome": event_type.removeprefix("Attempt").lower()})
            elif event_type == "InvoiceRecovered" and payload.get("amount"):
                self.recovered.inc(float(payload["amount"]), {"currency": str(payload.get("currency") or "usd")})

    def delivery_applied(self, provider: str = "stripe", waited: float | None = None) -> None:
        """One delivery applied; `waited`: seconds from its durable storage to its decision's commit."""
        self.applied.inc(1, {"provider": provider})
        if waited is not None:
            self.to_checkpoint.observe(max(0.0, waited))

    def occupancy(self, active: int, open_cases: int) -> None:
        self.active.set(active, {"shard": self.shard})
        self.open_cases.set(open_cases, {"shard": self.shard})


class SchedulerMetrics:
    def __init__(self) -> None:
        self.lag = Histogram("payrisk_timer_lag_seconds", "How late timers fire (due to delivered)",
                             boundaries=[0.1, 0.5, 1, 5, 30, 60, 300, 3600])
        self.fired = Counter("payrisk_timers_fired", "Timers delivered to customer homes")

    def delivered(self, lags: list[float]) -> None:
        for lag in lags:
            self.lag.observe(max(0.0, lag))
        self.fired.inc(len(lags))


class LoopMetrics:
    """A background actor's failed passes (the loop backs off and goes on; this is how an operator sees it)."""

    def __init__(self) -> None:
        self.failures = Counter("payrisk_loop_failures", "Failed passes of a background actor's loop",
                                tag_keys=("actor", "error"))

    def failed(self, actor: str, error: str) -> None:
        self.failures.inc(1, {"actor": actor, "error": error})


@cache
def loop_metrics() -> LoopMetrics:
    return LoopMetrics()


class NotifierMetrics:
    """What the notifier records that an operator must see; `counts` mirrors the counter in this process."""

    def __init__(self) -> None:
        self.no_channel = Counter("payrisk_alerts_no_channel",
                                  "Alerts recorded as no_channel: no alert channel configured, nothing sent",
                                  tag_keys=("kind",))
        self.counts: Tally[str] = Tally()

    def alert_without_channel(self, kind: str) -> None:
        self.no_channel.inc(1, {"kind": kind})
        self.counts[kind] += 1


@cache
def notifier_metrics() -> NotifierMetrics:
    """One per process (metrics are registered once)."""
    return NotifierMetrics()
