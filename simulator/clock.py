"""The simulator's injected clock: simulated (moved only by the caller) or real.

Stripe objects carry Unix timestamps from this clock. Webhook *signatures* are stamped by a separate wall clock,
because the receiver checks them against its own real time (300 s tolerance) even when billing time is simulated.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class RealClock:
    """Wall-clock time, timezone-aware UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class SimClock:
    """Simulated time that never moves backwards; thread-safe (the server thread and the test thread share it)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("SimClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        # no lock: reading one reference to an immutable datetime is atomic; the lock orders writers only (the
        # demo's driver and the simulator's server thread read the clock on every object they touch)
        return self._now

    def set(self, to: datetime) -> datetime:
        """Move to `to`; a time in the past is ignored (the clock stays put)."""
        with self._lock:
            self._now = max(self._now, to.astimezone(UTC))
            return self._now

    def advance(self, seconds: float) -> datetime:
        return self.set(self.now() + timedelta(seconds=seconds))


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


def add_month(moment: datetime, months: int = 1) -> datetime:
    """Same day next month, clamped to the month's last day (Stripe's billing-anchor rule)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    for day in (moment.day, 30, 29, 28):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise ValueError(f"cannot add {months} month(s) to {moment}")  # pragma: no cover - day 28 always exists
