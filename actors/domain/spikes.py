"""Spike detection over classified failures, and incidents with hysteresis (pure).

Time is cut into fixed buckets aligned to the epoch. A (provider, category) *spikes* when its count in a bucket
reaches `mean + k·σ` of the trailing baseline buckets, where σ is never below the Poisson floor √mean (failures
are independent arrivals, so a quiet baseline must not make ordinary noise look like a spike) nor `min_std`,
and the count is at least `min_count`. Bursts of the incident categories (CONFIG_ERROR, RATE_LIMITED) of one
provider form an *incident*: it opens when a bucket reaches `open_count` and resolves only after `quiet_buckets`
complete buckets at or below `resolve_count` — two thresholds, so a flapping rate does not flap the incident.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SpikeConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    bucket_seconds: int = Field(default=300, ge=1)
    baseline_buckets: int = Field(default=12, ge=2)
    k: float = Field(default=3.0, gt=0)
    min_count: int = Field(default=5, ge=1)
    min_std: float = Field(default=1.0, ge=0)
    evaluate_buckets: int = Field(default=2, ge=1)  # the current bucket and the last complete one(s)
    incident_categories: frozenset[str] = frozenset({"CONFIG_ERROR", "RATE_LIMITED"})
    open_count: int = Field(default=3, ge=1)
    resolve_count: int = Field(default=0, ge=0)
    quiet_buckets: int = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _hysteresis(self) -> SpikeConfig:
        if self.resolve_count >= self.open_count:
            raise ValueError("resolve_count must be below open_count (hysteresis)")
        return self

    @property
    def bucket(self) -> timedelta:
        return timedelta(seconds=self.bucket_seconds)

    @property
    def lookback_buckets(self) -> int:
        """Buckets, including the current one, that detection reads."""
        return max(self.baseline_buckets + self.evaluate_buckets, self.quiet_buckets + 1)


class Observation(BaseModel):
    """One classified failure."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: datetime
    provider: str
    category: str


class Spike(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    category: str
    bucket_start: datetime
    bucket_end: datetime
    count: int
    baseline_mean: float
    baseline_std: float
    threshold: float


class Incident(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    incident_id: str
    provider: str
    opened_at: datetime
    categories: tuple[str, ...]


class IncidentChange(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["opened", "resolved"]
    incident: Incident
    at: datetime
    count: int  # incident-category failures in the bucket that decided


def bucket_start(at: datetime, config: SpikeConfig) -> datetime:
    seconds = (at - _EPOCH).total_seconds()
    return _EPOCH + timedelta(seconds=math.floor(seconds / config.bucket_seconds) * config.bucket_seconds)


def lookback_start(now: datetime, config: SpikeConfig) -> datetime:
    """The earliest time an observation can matter at `now`."""
    return bucket_start(now, config) - config.bucket * (config.lookback_buckets - 1)


def series(observations: Iterable[Observation], now: datetime, config: SpikeConfig) -> dict[tuple[str, str], list[int]]:
    """Counts per (provider, category) per bucket, oldest first; the last is the current (partial) bucket."""
    first, size = lookback_start(now, config), config.lookback_buckets
    counts: dict[tuple[str, str], list[int]] = {}
    for o in observations:
        index = int((o.at - first).total_seconds() // config.bucket_seconds)
        if 0 <= index < size and o.at <= now:
            counts.setdefault((o.provider, o.category), [0] * size)[index] += 1
    return counts


def threshold(baseline: list[int], config: SpikeConfig) -> tuple[float, float, float]:
    """(mean, σ, threshold) of a baseline; σ is the sample σ raised to the Poisson and configured floors."""
    mean = sum(baseline) / len(baseline)
    std = math.sqrt(sum((c - mean) ** 2 for c in baseline) / len(baseline))
    sigma = max(std, math.sqrt(mean), config.min_std)
    return mean, std, max(float(config.min_count), mean + config.k * sigma)


def detect_spikes(observations: Iterable[Observation], now: datetime, config: SpikeConfig) -> list[Spike]:
    """Spikes in the last `evaluate_buckets` buckets, each judged against the baseline just before it."""
    spikes: list[Spike] = []
    current = bucket_start(now, config)
    for (provider, category), counts in sorted(series(observations, now, config).items()):
        for back in range(config.evaluate_buckets):
            end = len(counts) - back
            mean, std, limit = threshold(counts[end - 1 - config.baseline_buckets : end - 1], config)
            if counts[end - 1] >= limit:
                start = current - config.bucket * back
                spikes.append(Spike(provider=provider, category=category, bucket_start=start,
                                    bucket_end=start + config.bucket, count=counts[end - 1],
                                    baseline_mean=round(mean, 3), baseline_std=round(std, 3),
                                    threshold=round(limit, 3)))  # fmt: skip
    return spikes


def incident_series(observations: Iterable[Observation], now: datetime, config: SpikeConfig) -> dict[str, list[int]]:
    """Incident-category counts per provider per bucket, oldest first (categories summed)."""
    merged: dict[str, list[int]] = {}
    for (provider, category), counts in series(observations, now, config).items():
        if category in config.incident_categories:
            total = merged.setdefault(provider, [0] * len(counts))
            merged[provider] = [a + b for a, b in zip(total, counts, strict=True)]
    return merged


def evaluate_incidents(
    observations: Iterable[Observation], open_incidents: Mapping[str, Incident], now: datetime, config: SpikeConfig
) -> list[IncidentChange]:
    """Incidents to open (a recent bucket reached `open_count`) or resolve (quiet long enough), per provider."""
    observed = list(observations)
    counts = incident_series(observed, now, config)
    changes: list[IncidentChange] = []
    for provider in sorted(set(counts) | set(open_incidents)):
        series_ = counts.get(provider, [0] * config.lookback_buckets)
        incident = open_incidents.get(provider)
        change = (
            _resolve(incident, series_, now, config) if incident else _open(provider, observed, series_, now, config)
        )
        if change is not None:
            changes.append(change)
    return changes


def _open(
    provider: str, observed: list[Observation], counts: list[int], now: datetime, config: SpikeConfig
) -> IncidentChange | None:
    current = bucket_start(now, config)
    for back in (1, 0):  # the last complete bucket first: the incident opens at its earliest burst
        if counts[len(counts) - 1 - back] >= config.open_count:
            opened = current - config.bucket * back
            categories = sorted(
                {
                    o.category
                    for o in observed
                    if o.provider == provider and o.category in config.incident_categories and opened <= o.at <= now
                }
            )
            incident = Incident(
                incident_id=f"{provider}:{opened.isoformat()}",
                provider=provider,
                opened_at=opened,
                categories=tuple(categories),
            )
            return IncidentChange(kind="opened", incident=incident, at=now, count=counts[len(counts) - 1 - back])
    return None


def _resolve(incident: Incident, counts: list[int], now: datetime, config: SpikeConfig) -> IncidentChange | None:
    """Resolved once the current bucket and the last `quiet_buckets` complete ones, all after opening, are quiet."""
    quiet_since = bucket_start(now, config) - config.bucket * config.quiet_buckets
    window = counts[-(config.quiet_buckets + 1) :]
    if quiet_since <= incident.opened_at or any(c > config.resolve_count for c in window):
        return None
    return IncidentChange(kind="resolved", incident=incident, at=now, count=window[-1])


def alertable(spikes: list[Spike], incident_providers: set[str], config: SpikeConfig) -> list[Spike]:
    """Spikes worth their own alert: an incident already speaks for its provider's incident categories."""
    return [s for s in spikes if not (s.provider in incident_providers and s.category in config.incident_categories)]


def spike_alert(spike: Spike, tenant: str, config: SpikeConfig) -> dict[str, object]:
    """The outbox `alert` payload for a spike (the notifier's AlertPayload shape)."""
    minutes = config.bucket_seconds / 60
    text = (
        f"{spike.count} {spike.category} failures on {spike.provider} in the {minutes:g}-minute window from "
        f"{spike.bucket_start:%Y-%m-%d %H:%M} UTC; baseline {spike.baseline_mean:.1f} ± "
        f"{spike.baseline_std:.1f} per window, threshold {spike.threshold:.1f}."
    )
    fields = {
        "tenant": tenant,
        "provider": spike.provider,
        "category": spike.category,
        "count": str(spike.count),
        "baseline": f"{spike.baseline_mean:.1f}",
        "window_start": spike.bucket_start.isoformat(),
    }
    return {
        "kind": "spike",
        "title": f"Failure spike: {spike.category} on {spike.provider}",
        "text": text,
        "fields": fields,
        "severity": "warning",
    }


def incident_alert(change: IncidentChange, tenant: str) -> dict[str, object]:
    """The outbox `alert` payload for an incident opening (critical) or resolving (info)."""
    i = change.incident
    what = "+".join(i.categories) or "incident"
    if change.kind == "opened":
        title = f"Incident opened: {what} on {i.provider}"
        text = (
            f"{change.count} {what} failures on {i.provider} in one window; retries for {i.provider} are held "
            "until the incident clears."
        )
    else:
        title = f"Incident resolved: {what} on {i.provider}"
        text = f"No {what} failures on {i.provider} for a while; held retries resume with paced catch-up."
    fields = {
        "tenant": tenant,
        "provider": i.provider,
        "incident": i.incident_id,
        "categories": what,
        "opened_at": i.opened_at.isoformat(),
    }
    return {
        "kind": "spike",
        "title": title,
        "text": text,
        "fields": fields,
        "severity": "critical" if change.kind == "opened" else "info",
    }
