"""The notifier's send policy: frequency caps, quiet hours across zones and DST, backoff, Message-IDs."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.notifier.policy import (
    FrequencyCap,
    QuietHours,
    SendPolicy,
    backoff_delay,
    is_dead,
    message_id_for,
    next_send_time,
)

NO_QUIET = SendPolicy(quiet_hours=None)
NO_CAPS = SendPolicy(caps=())


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_an_email_under_every_cap_goes_out_now() -> None:
    now = utc(2025, 3, 4, 15)
    assert next_send_time(now, [now - timedelta(hours=3)], "UTC", NO_QUIET) == now


def test_the_daily_cap_holds_the_email_until_the_oldest_send_leaves_the_window() -> None:
    now = utc(2025, 3, 4, 15)
    sends = [now - timedelta(hours=5), now - timedelta(hours=1)]
    assert next_send_time(now, sends, "UTC", NO_QUIET) == now + timedelta(hours=19)


def test_the_weekly_cap_holds_even_when_the_daily_cap_allows() -> None:
    now = utc(2025, 3, 8, 12)
    sends = [now - timedelta(days=d) for d in (6, 5, 4, 3, 2)]
    assert next_send_time(now, sends, "UTC", NO_QUIET) == now + timedelta(days=1)


def test_sends_older_than_every_window_do_not_count() -> None:
    now = utc(2025, 3, 8, 12)
    assert next_send_time(now, [now - timedelta(days=8)] * 10, "UTC", NO_QUIET) == now


def test_a_send_exactly_one_window_ago_has_left_the_window() -> None:
    policy = SendPolicy(caps=(FrequencyCap(window=timedelta(hours=24), max_sends=1),), quiet_hours=None)
    now = utc(2025, 3, 4, 12)
    assert next_send_time(now, [now - timedelta(hours=24)], "UTC", policy) == now


def test_an_evening_email_in_new_york_waits_for_eight_the_next_morning() -> None:
    now = utc(2025, 2, 4, 3)  # 22:00 EST on 3 February
    assert next_send_time(now, [], "America/New_York", NO_CAPS) == utc(2025, 2, 4, 13)  # 08:00 EST


def test_an_early_morning_email_in_tokyo_waits_until_eight_the_same_day() -> None:
    now = utc(2025, 2, 3, 20)  # 05:00 JST on 4 February
    assert next_send_time(now, [], "Asia/Tokyo", NO_CAPS) == utc(2025, 2, 3, 23)  # 08:00 JST


def test_the_same_instant_is_allowed_in_one_zone_and_quiet_in_another() -> None:
    now = utc(2025, 6, 2, 12)  # 13:00 in London, 22:00 in Sydney
    assert next_send_time(now, [], "Europe/London", NO_CAPS) == now
    assert next_send_time(now, [], "Australia/Sydney", NO_CAPS) == utc(2025, 6, 2, 22)  # 08:00 AEST


def test_quiet_hours_end_at_local_eight_on_the_night_clocks_spring_forward() -> None:
    now = utc(2025, 3, 9, 4)  # 23:00 EST on 8 March; at 02:00 on 9 March New York moves to EDT
    assert next_send_time(now, [], "America/New_York", NO_CAPS) == utc(2025, 3, 9, 12)  # 08:00 EDT


def test_quiet_hours_end_at_local_eight_on_the_night_clocks_fall_back() -> None:
    now = utc(2025, 11, 2, 3)  # 23:00 EDT on 1 November; at 02:00 on 2 November back to EST
    assert next_send_time(now, [], "America/New_York", NO_CAPS) == utc(2025, 11, 2, 13)  # 08:00 EST


def test_quiet_hours_ending_inside_the_dst_gap_end_just_after_the_gap() -> None:
    policy = SendPolicy(caps=(), quiet_hours=QuietHours(start=time(22), end=time(2, 30)))
    now = utc(2025, 3, 9, 6)  # 01:00 EST; 02:30 does not exist that night
    released = next_send_time(now, [], "America/New_York", policy)
    assert released == utc(2025, 3, 9, 7, 30)
    assert released.astimezone(ZoneInfo("America/New_York")).time() == time(3, 30)


def test_quiet_hours_that_do_not_wrap_midnight_are_honoured() -> None:
    policy = SendPolicy(caps=(), quiet_hours=QuietHours(start=time(12), end=time(14)))
    assert next_send_time(utc(2025, 3, 4, 13), [], "UTC", policy) == utc(2025, 3, 4, 14)
    assert next_send_time(utc(2025, 3, 4, 15), [], "UTC", policy) == utc(2025, 3, 4, 15)


def test_a_cap_release_that_falls_in_quiet_hours_moves_to_the_morning() -> None:
    policy = SendPolicy(caps=(FrequencyCap(window=timedelta(hours=24), max_sends=1),))
    now = utc(2025, 3, 4, 12)
    released = next_send_time(now, [utc(2025, 3, 3, 22)], "UTC", policy)  # cap frees at 22:00, quiet then
    assert released == utc(2025, 3, 5, 8)


def test_an_unknown_or_missing_time_zone_falls_back_to_the_policy_default() -> None:
    policy = SendPolicy(caps=(), default_timezone="Europe/Paris")
    now = utc(2025, 1, 10, 21)  # 22:00 in Paris
    assert next_send_time(now, [], "Mars/Olympus_Mons", policy) == utc(2025, 1, 11, 7)
    assert next_send_time(now, [], None, policy) == utc(2025, 1, 11, 7)


def test_a_policy_with_an_unknown_default_zone_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown IANA time zone"):
        SendPolicy(default_timezone="Nowhere/Special")


def test_a_naive_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_send_time(datetime(2025, 1, 1, 12), [], "UTC", SendPolicy())


ZONES = st.sampled_from(["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe"])
INSTANTS = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
)


@given(now=INSTANTS, zone=ZONES, ago=st.lists(st.integers(min_value=0, max_value=8 * 24 * 60), max_size=12))
def test_the_send_time_is_never_early_never_quiet_and_always_within_the_caps(
    now: datetime, zone: str, ago: list[int]
) -> None:
    policy = SendPolicy()
    sends = [now - timedelta(minutes=m) for m in ago]
    when = next_send_time(now, sends, zone, policy)
    local = when.astimezone(ZoneInfo(zone)).time()
    assert when >= now
    assert time(8) <= local < time(21)
    for cap in policy.caps:
        assert sum(1 for s in sends if s > when - cap.window) < cap.max_sends


def test_backoff_doubles_from_the_base_and_stops_at_the_cap() -> None:
    base, cap = timedelta(seconds=30), timedelta(minutes=5)
    delays = [backoff_delay(n, base, cap) for n in range(0, 7)]
    assert delays == [timedelta(0), *(timedelta(seconds=s) for s in (30, 60, 120, 240)), cap, cap]
    assert backoff_delay(10_000, base, cap) == cap


def test_a_notification_is_dead_once_it_has_used_every_attempt() -> None:
    assert not is_dead(2, 3)
    assert is_dead(3, 3)


def test_message_ids_are_deterministic_per_key_and_distinct_across_keys() -> None:
    first = message_id_for("acme:email:in_1:payment_failed", "billing.example.com")
    assert first == message_id_for("acme:email:in_1:payment_failed", "billing.example.com")
    assert first != message_id_for("other:email:in_1:payment_failed", "billing.example.com")
    assert first.startswith("<payrisk.") and first.endswith("@billing.example.com>")
