"""When a notification may go out: frequency caps, quiet hours, retry backoff and the dead-letter rule.

Everything here is pure: the clock is an argument. Times are timezone-aware; results are in UTC.
Alerts are never subject to caps or quiet hours — only customer emails are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FrequencyCap(BaseModel):
    """At most `max_sends` emails to one customer in any rolling `window`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: timedelta = Field(gt=timedelta(0))
    max_sends: int = Field(ge=1)


class QuietHours(BaseModel):
    """Local wall-clock hours in which no email is sent. `start > end` wraps midnight (21:00–08:00)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: time = time(21, 0)
    end: time = time(8, 0)


class SendPolicy(BaseModel):
    """The notifier's tunables. The defaults are what a careful dunning programme uses."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    caps: tuple[FrequencyCap, ...] = (
        FrequencyCap(window=timedelta(hours=24), max_sends=2),
        FrequencyCap(window=timedelta(days=7), max_sends=5),
    )
    quiet_hours: QuietHours | None = QuietHours()
    default_timezone: str = "UTC"
    #: Templates that are not held back by the frequency cap (good news should not wait).
    uncapped_templates: frozenset[str] = frozenset({"recovered"})
    backoff_base: timedelta = Field(default=timedelta(seconds=30), gt=timedelta(0))
    backoff_cap: timedelta = Field(default=timedelta(hours=1), gt=timedelta(0))
    max_attempts: int = Field(default=8, ge=1)

    @model_validator(mode="after")
    def _known_default_zone(self) -> SendPolicy:
        try:
            ZoneInfo(self.default_timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown IANA time zone {self.default_timezone!r}") from error
        return self

    @property
    def longest_window(self) -> timedelta:
        """How far back the caller must look for recent sends."""
        return max((cap.window for cap in self.caps), default=timedelta(0))


def zone_for(name: str | None, default: str) -> ZoneInfo:
    """The customer's zone; an absent or unknown IANA name falls back to `default` (mail is not blocked)."""
    try:
        return ZoneInfo(name or default)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(default)


def cap_release_time(now: datetime, recent_sends: Sequence[datetime], cap: FrequencyCap) -> datetime:
    """The earliest instant >= now at which one more send keeps `cap` (sends at or after `now` also count)."""
    in_window = sorted(sent for sent in recent_sends if sent > now - cap.window)
    excess = len(in_window) - cap.max_sends
    if excess < 0:
        return now
    return max(now, in_window[excess] + cap.window)


def _local_end(day: date, end: time, zone: ZoneInfo) -> datetime:
    # A wall time skipped by DST (fold=0) maps to the pre-transition offset, i.e. just after the gap.
    return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


def quiet_hours_end(now: datetime, zone: ZoneInfo, quiet: QuietHours | None) -> datetime:
    """`now` when outside quiet hours in `zone`; otherwise the instant they end."""
    if quiet is None or quiet.start == quiet.end:
        return now
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    if quiet.start > quiet.end:  # wraps midnight
        if clock >= quiet.start:
            return max(now, _local_end(local.date() + timedelta(days=1), quiet.end, zone))
        if clock < quiet.end:
            return max(now, _local_end(local.date(), quiet.end, zone))
        return now
    if quiet.start <= clock < quiet.end:
        return max(now, _local_end(local.date(), quiet.end, zone))
    return now


def next_send_time(
    now: datetime, recent_sends: Sequence[datetime], tz: str | None, policy: SendPolicy
) -> datetime:
    """When an email to this customer may go out: `now` if allowed, otherwise the first allowed instant.

    Caps and quiet hours are applied until neither moves the time (each step only moves forward, and a cap
    is always satisfiable, so this ends).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    zone = zone_for(tz, policy.default_timezone)
    candidate = now.astimezone(UTC)
    while True:
        releases = (cap_release_time(candidate, recent_sends, cap) for cap in policy.caps)
        capped = max(releases, default=candidate)
        settled = quiet_hours_end(capped, zone, policy.quiet_hours)
        if settled == candidate:
            return candidate
        candidate = settled


def backoff_delay(
    attempts: int, base: timedelta = timedelta(seconds=30), cap: timedelta = timedelta(hours=1)
) -> timedelta:
    """Delay before the next try after `attempts` failures: base · 2^(attempts-1), at most `cap`."""
    if attempts <= 0:
        return timedelta(0)
    exponent = min(attempts - 1, 32)  # 2^32 · base already exceeds any sane cap
    return min(cap, base * (1 << exponent))


def is_dead(attempts: int, max_attempts: int) -> bool:
    """After `attempts` failed tries, is the notification dead-lettered?"""
    return attempts >= max_attempts


def message_id_for(idempotency_key: str, domain: str) -> str:
    """A deterministic RFC 5322 Message-ID: a resend of the same notification carries the same id.

    Pass a tenant-qualified key: ids are global, idempotency keys are unique only per tenant.
    """
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:40]
    return f"<payrisk.{digest}@{domain}>"
