"""Events of a tenant's `monitor:{provider}` streams (actors/monitor.py): spikes and incidents, never folded into a
customer's state."""

from __future__ import annotations

from actors.domain.events.base import DomainEvent, IsoTime


class MonitorEvent(DomainEvent):
    """An event of a `monitor:{provider}` stream."""


class IncidentEvent(MonitorEvent):
    incident_id: str
    provider: str
    categories: list[str]
    opened_at: IsoTime
    at: IsoTime
    count: int


class IncidentOpened(IncidentEvent):
    """A burst of CONFIG_ERROR / RATE_LIMITED failures: retries on the provider wait until it resolves."""


class IncidentResolved(IncidentEvent):
    pass


class SpikeDetected(MonitorEvent):
    """A (provider, category) failure count above its baseline (`actors.domain.spikes.Spike` as JSON)."""

    provider: str
    category: str
    bucket_start: IsoTime
    bucket_end: IsoTime
    count: int
    baseline_mean: float
    baseline_std: float
    threshold: float
