"""The injected clock: real for `payrisk up`, simulated (a named Ray actor) for tests, the demo and benchmarks.

The simulated time is also kept in a small shared-memory file of the clock actor (Linux `memfd`), which every
process on its machine maps read-only (through `/proc/<pid>/fd/<fd>`): reading the time is then a memory read
instead of a Ray call (~2 ms each on a loaded 2-core machine, and a decision reads it once). A process that cannot
map it (another node, another OS) asks the actor as before. Writes happen only in the actor, so the order is the
same as with the calls: once `set` returned, every reader sees the new time.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import time
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


_SLOT = struct.Struct("<q")  # microseconds since the epoch (UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class SharedTime:
    """The time in 16 bytes of shared memory: the same value twice. The one writer writes slot 0 then slot 1;
    a reader reads slot 1 then slot 0 and takes the value only when both agree (a write under way → read again)."""

    SIZE = 16

    def __init__(self, memory: mmap.mmap, owner: int | None = None) -> None:
        self._memory, self._owner = memory, owner

    @classmethod
    def create(cls) -> tuple[SharedTime, int]:
        """A new anonymous shared file (the writer's end) and its descriptor in this process."""
        fd = os.memfd_create("payrisk-sim-clock")
        os.ftruncate(fd, cls.SIZE)
        return cls(mmap.mmap(fd, cls.SIZE)), fd

    @classmethod
    def attach(cls, pid: int, fd: int) -> SharedTime | None:
        """Map the writer's file read-only; None when this process cannot (another machine, no /proc)."""
        try:
            with open(f"/proc/{pid}/fd/{fd}", "rb") as f:
                return cls(mmap.mmap(f.fileno(), cls.SIZE, prot=mmap.PROT_READ), owner=pid)
        except (OSError, ValueError):
            return None

    def write(self, at: datetime) -> None:
        micros = (at - _EPOCH) // _MICROSECOND
        _SLOT.pack_into(self._memory, 0, micros)
        _SLOT.pack_into(self._memory, 8, micros)

    def read(self) -> datetime | None:
        """The time; None when the writer's process is gone (a restarted clock writes elsewhere)."""
        if self._owner is not None and not os.path.exists(f"/proc/{self._owner}"):
            return None
        while True:
            second, first = _SLOT.unpack_from(self._memory, 8)[0], _SLOT.unpack_from(self._memory, 0)[0]
            if first == second:
                return _EPOCH + first * _MICROSECOND


@ray.remote(num_cpus=0)
class SimClockActor:
    """Simulated time shared by every actor of one platform; moves only when told to."""

    def __init__(self, start_iso: str) -> None:
        self._now = datetime.fromisoformat(start_iso)
        self._shared: SharedTime | None = None
        self._fd: int | None = None
        if self._now.tzinfo is not None:  # the shared copy holds UTC instants
            with contextlib.suppress(OSError, AttributeError):  # no memfd (not Linux): readers ask the actor
                self._shared, self._fd = SharedTime.create()
        self._publish()

    def _publish(self) -> None:
        if self._shared is not None:
            self._shared.write(self._now)

    def shared(self) -> tuple[int, int] | None:
        """(pid, fd) of the shared copy of the time, for readers on this machine; None when there is none."""
        return (os.getpid(), self._fd) if self._fd is not None else None

    def now(self) -> str:
        return self._now.isoformat()

    def set(self, iso: str) -> str:
        self._now = max(self._now, datetime.fromisoformat(iso))
        self._publish()
        return self._now.isoformat()

    def advance(self, seconds: float) -> str:
        self._now += timedelta(seconds=seconds)
        self._publish()
        return self._now.isoformat()


class SimClock:
    """A reader of the clock actor's time: from its shared copy when this process can map it, else by a call."""

    RETRY_ATTACH_SECONDS = 60.0

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self._shared: SharedTime | None = None
        self._attach_after = 0.0  # monotonic time of the next attempt to map the shared copy

    async def now(self) -> datetime:
        if self._shared is None and time.monotonic() >= self._attach_after:
            self._attach_after = time.monotonic() + self.RETRY_ATTACH_SECONDS
            where = await self._handle.shared.remote()
            self._shared = SharedTime.attach(*where) if where else None
        if self._shared is not None:
            at = self._shared.read()
            if at is not None:
                return at
            self._shared, self._attach_after = None, 0.0  # the clock restarted: map its new copy next time
        return datetime.fromisoformat(await self._handle.now.remote())


def make_clock(mode: str, namespace: str = NAMESPACE) -> Clock:
    """`real`, or `sim` (the named clock actor must exist)."""
    if mode == "real":
        return RealClock()
    return SimClock(ray.get_actor(CLOCK_ACTOR, namespace=namespace))


def start_sim_clock(start: datetime, namespace: str = NAMESPACE) -> Any:
    # `now` and `set` are idempotent (`set` never goes back): a call caught by a restart is sent again
    return SimClockActor.options(name=CLOCK_ACTOR, namespace=namespace, get_if_exists=True,
                                 max_restarts=-1, max_task_retries=-1).remote(start.isoformat())
