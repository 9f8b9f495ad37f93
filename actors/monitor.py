"""The monitor: reads recent classified failures, detects spikes and incidents, alerts once and records them.

Each finding is written in one transaction: an outbox `alert` row (its idempotency key names the finding) and,
only when that row is new, an event in the tenant's `monitor:{provider}` stream. `tick` is therefore idempotent:
Ray may retry it, or a restarted monitor may see the same burst again, and nothing is alerted or recorded twice.
Whether an incident is open is read back from those events (`open_incidents`), so there is no extra table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import ray
import structlog

from actors.domain.events import dump_event, make_event
from actors.domain.spikes import (
    Incident,
    IncidentChange,
    Observation,
    Spike,
    SpikeConfig,
    alertable,
    detect_spikes,
    evaluate_incidents,
    incident_alert,
    lookback_start,
    spike_alert,
)
from actors.periodic import PeriodicActor
from store import Conn, Database, events, incidents, outbox
from store.events import NewEvent

log = structlog.get_logger("payrisk.monitor")

STREAM_PREFIX, INCIDENT_EVENTS = incidents.STREAM_PREFIX, incidents.INCIDENT_EVENTS

open_incidents = incidents.open_incidents


async def load_observations(
    conn: Conn, since: datetime, now: datetime, tenant: str | None = None
) -> dict[str, list[Observation]]:
    """Classified failures in [since, now], per tenant (of every tenant unless one is named)."""
    found: dict[str, list[Observation]] = {}
    for row in await incidents.classified_failures(conn, since, now, tenant):
        found.setdefault(row["tenant_id"], []).append(
            Observation(at=row["at"], provider=row["provider"], category=row["category"])
        )
    return found


_tenants_with_incidents = incidents.tenants_with_incidents


async def _record(
    conn: Conn,
    tenant: str,
    provider: str,
    finding: tuple[str, dict[str, Any]],
    key: str,
    alert: dict[str, Any],
    now: datetime,
) -> bool:
    """Alert once per key; the event is appended only with a new alert, in the same transaction."""
    stream = STREAM_PREFIX + provider
    if not await outbox.enqueue(conn, tenant, "alert", key, alert, stream_id=stream, available_at=now):
        return False
    version = await events.stream_version(conn, tenant, stream)
    await events.append(conn, tenant, stream, version, [NewEvent(*finding)])
    return True


def _incident(payload: dict[str, Any]) -> Incident:
    return Incident(
        incident_id=payload["incident_id"],
        provider=payload["provider"],
        opened_at=datetime.fromisoformat(payload["opened_at"]),
        categories=tuple(payload["categories"]),
    )


def _change_event(change: IncidentChange) -> tuple[str, dict[str, Any]]:
    i = change.incident
    payload = {
        "incident_id": i.incident_id,
        "provider": i.provider,
        "categories": list(i.categories),
        "opened_at": i.opened_at.isoformat(),
        "at": change.at.isoformat(),
        "count": change.count,
    }
    # validated against the event registry before it is written: a monitor stream holds typed events too
    return dump_event(make_event("IncidentOpened" if change.kind == "opened" else "IncidentResolved", **payload))


def _spike_event(spike: Spike) -> tuple[str, dict[str, Any]]:
    return dump_event(make_event("SpikeDetected", **spike.model_dump(mode="json")))


async def detect_and_record(
    db: Database, now: datetime, config: SpikeConfig, tenant: str | None = None
) -> dict[str, int]:
    """One monitoring pass at `now` over every tenant (or one); counts the new spikes and incident changes."""
    async with db.connection() as conn:
        observed = await load_observations(conn, lookback_start(now, config), now, tenant)
        tenants = set(observed) | await _tenants_with_incidents(conn, tenant)
    found = {"spikes": 0, "opened": 0, "resolved": 0}
    for name in sorted(tenants):
        async with db.transaction() as conn:
            for kind, n in (await _tenant_pass(conn, name, observed.get(name, []), now, config)).items():
                found[kind] += n
    return found


async def _tenant_pass(
    conn: Conn, tenant: str, observed: list[Observation], now: datetime, config: SpikeConfig
) -> dict[str, int]:
    current = {p["provider"]: _incident(p) for p in await open_incidents(conn, tenant)}
    found = {"spikes": 0, "opened": 0, "resolved": 0}
    for change in evaluate_incidents(observed, current, now, config):
        key = f"alert:{tenant}:incident:{change.incident.incident_id}:{change.kind}"
        if await _record(
            conn, tenant, change.incident.provider, _change_event(change), key, incident_alert(change, tenant), now
        ):
            found[change.kind] += 1
        if change.kind == "opened":
            current[change.incident.provider] = change.incident
        else:
            current.pop(change.incident.provider, None)
    for spike in alertable(detect_spikes(observed, now, config), set(current), config):
        key = f"alert:{tenant}:spike:{spike.provider}:{spike.category}:{spike.bucket_start.isoformat()}"
        found["spikes"] += await _record(
            conn, tenant, spike.provider, _spike_event(spike), key, spike_alert(spike, tenant, config), now
        )
    return found


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class Monitor(PeriodicActor):
    """Named `monitor`. Config: `database_url`, `clock` (`real` | `sim`), optional `spikes` (SpikeConfig)."""

    name = "monitor"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.spikes = SpikeConfig(**config.get("spikes", {}))

    async def tick(self) -> dict[str, int]:
        """Detect at the injected clock's now; returns how many new spikes and incident changes were recorded."""
        return await detect_and_record(await self._database(), await self._clock.now(), self.spikes)

    async def start(self, poll_seconds: float = 30.0) -> None:
        """Run `tick` in the background (used by `payrisk up`; tests call `tick` themselves)."""
        await super().start(poll_seconds)
