"""The injected clock: real for `payrisk up`, simulated (a named Ray actor) for tests, the demo and benchmarks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import ray

from actors.placement import NAMESPACE

CLOCK_ACTOR = "clock"


class Clock(Protocol):
    async def now(self) -> datetime: ...


class RealClock:
    async def now(self) -> datetime:
        return datetime.now(UTC)


@ray.remote(num_cpus=0)
class SimClockActor:
    """Simulated time shared by every actor of one platform; moves only when told to."""

    def __init__(self, start_iso: str) -> None:
        self._now = datetime.fromisoformat(start_iso)

    def now(self) -> str:
        return self._now.isoformat()

    def set(self, iso: str) -> str:
        self._now = max(self._now, datetime.fromisoformat(iso))
        return self._now.isoformat()

    def advance(self, seconds: float) -> str:
        self._now += timedelta(seconds=seconds)
        return self._now.isoformat()


class SimClock:
    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def now(self) -> datetime:
        return datetime.fromisoformat(await self._handle.now.remote())


def make_clock(mode: str, namespace: str = NAMESPACE) -> Clock:
    """`real`, or `sim` (the named clock actor must exist)."""
    if mode == "real":
        return RealClock()
    return SimClock(ray.get_actor(CLOCK_ACTOR, namespace=namespace))


def start_sim_clock(start: datetime, namespace: str = NAMESPACE) -> Any:
    return SimClockActor.options(name=CLOCK_ACTOR, namespace=namespace, get_if_exists=True,
                                 max_restarts=-1).remote(start.isoformat())
