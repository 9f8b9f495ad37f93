"""Customer-local time: business hours, business days, pay dates and country calendars."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from strategies.calendar import CountryCalendar, default_countries, weekday_name
from strategies.errors import StrategyError
from strategies.schedules import BusinessHours, ExponentialSchedule, LadderSchedule, PaydaySchedule
from strategies.timing import align_to_hours, is_payday, next_payday, roll_to_business_day

COUNTRIES = default_countries()
US, DE, SA = COUNTRIES.of("US"), COUNTRIES.of("de"), COUNTRIES.of("SA")
HOURS = BusinessHours()
PAYDAY = PaydaySchedule(type="payday")


def test_unknown_or_missing_countries_use_the_utc_default_calendar() -> None:
    assert COUNTRIES.of("ZZ").timezone == "UTC"
    assert COUNTRIES.of(None) == COUNTRIES.default


def test_the_eea_and_uk_are_flagged_for_strong_customer_authentication() -> None:
    assert all(COUNTRIES.of(code).sca for code in ("DE", "FR", "NO", "GB", "IE"))
    assert not any(COUNTRIES.of(code).sca for code in ("US", "CH", "JP"))


def test_holidays_and_local_weekends_are_not_business_days() -> None:
    assert not US.is_business_day(date(2026, 11, 26))  # Thanksgiving
    assert not DE.is_business_day(date(2026, 10, 3))  # German Unity Day (a Saturday anyway)
    assert not DE.is_business_day(date(2026, 4, 6))  # Easter Monday
    assert not SA.is_business_day(date(2026, 3, 6)) and SA.is_business_day(
        date(2026, 3, 8)
    )  # Fri off, Sun on


def test_the_last_business_day_skips_weekends_and_holidays() -> None:
    assert US.last_business_day(2026, 5) == date(2026, 5, 29)  # 31st is Sunday
    assert DE.last_business_day(2026, 12) == date(2026, 12, 31)
    gb = COUNTRIES.of("GB")
    assert gb.last_business_day(2026, 8) == date(2026, 8, 28)  # 31st is the summer bank holiday


def test_a_moment_inside_business_hours_stays_put() -> None:
    at = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)  # 15:00 Berlin
    assert align_to_hours(at, HOURS, DE, DE.zone()) == at


def test_an_early_moment_moves_to_opening_time_the_same_day() -> None:
    at = datetime(2026, 3, 3, 5, 0, tzinfo=UTC)  # 06:00 Berlin
    assert align_to_hours(at, HOURS, DE, DE.zone()) == datetime(2026, 3, 3, 8, 0, tzinfo=UTC)


def test_a_late_moment_moves_to_the_next_business_morning_past_weekend_and_holidays() -> None:
    at = datetime(2026, 4, 2, 17, 0, tzinfo=UTC)  # Thursday 19:00 Berlin before Easter
    assert align_to_hours(at, HOURS, DE, DE.zone()) == datetime(
        2026, 4, 7, 7, 0, tzinfo=UTC
    )  # Tue 09:00 CEST


def test_opening_time_follows_daylight_saving_time() -> None:
    at = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)  # Saturday; the US switches to EDT on the 8th
    assert align_to_hours(at, HOURS, US, US.zone()) == datetime(2026, 3, 9, 13, 0, tzinfo=UTC)


def test_no_business_hours_means_any_time() -> None:
    at = datetime(2026, 3, 8, 3, 0, tzinfo=UTC)
    assert align_to_hours(at, None, US, US.zone()) == at


def test_weekdays_that_never_meet_a_business_day_fail_clearly() -> None:
    with pytest.raises(StrategyError, match="never fall on a business day"):
        align_to_hours(datetime(2026, 3, 3, tzinfo=UTC), BusinessHours(weekdays=("sun",)), US, US.zone())


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 3, 1), True),
        (date(2026, 3, 15), True),
        (date(2026, 3, 31), True),  # last business day
        (date(2026, 3, 30), False),
        (date(2026, 5, 29), True),  # last business day of May (31st is a Sunday)
    ],
)
def test_pay_dates_are_the_1st_the_15th_and_the_last_business_day(day: date, expected: bool) -> None:
    assert is_payday(day, PAYDAY, US) is expected


def test_a_pay_date_past_the_end_of_a_short_month_falls_on_its_last_day() -> None:
    schedule = PaydaySchedule(type="payday", days_of_month=(31,), last_business_day=False)
    assert is_payday(date(2026, 2, 28), schedule, US)
    assert not is_payday(date(2026, 2, 27), schedule, US)


def test_the_next_payday_rolls_a_weekend_pay_date_to_monday_at_local_time() -> None:
    lower = datetime(2026, 3, 4, 14, 30, tzinfo=UTC)
    assert next_payday(lower, PAYDAY, US, US.zone()) == datetime(2026, 3, 16, 13, 0, tzinfo=UTC)


def test_a_payday_already_past_today_waits_for_the_next_one() -> None:
    lower = datetime(2026, 3, 16, 14, 0, tzinfo=UTC)  # Monday 16th, after 09:00 New York
    assert next_payday(lower, PAYDAY, US, US.zone()) == datetime(2026, 3, 31, 13, 0, tzinfo=UTC)


def test_rolling_to_a_business_day_skips_holidays() -> None:
    assert roll_to_business_day(date(2026, 4, 3), DE) == date(2026, 4, 7)


def test_weekday_names_start_on_monday() -> None:
    assert weekday_name(date(2026, 3, 2)) == "mon"


def test_schedules_compute_offsets_and_delays() -> None:
    ladder = LadderSchedule(type="ladder", unit="hours", steps=(4, 24))
    assert [ladder.offset(n).total_seconds() / 3600 for n in (1, 2, 3)] == [4, 24, 24]
    backoff = ExponentialSchedule(type="exponential", base_seconds=10, factor=2, cap_seconds=60, jitter=0.5)
    assert [backoff.delay(n, 0.0).total_seconds() for n in (1, 2, 3, 4, 200)] == [10, 20, 40, 60, 60]
    assert backoff.delay(1, 1.0).total_seconds() == 5


def test_a_calendar_accepts_a_custom_weekend_and_time() -> None:
    calendar = CountryCalendar(timezone="Asia/Jerusalem", weekend=("fri", "sat"))
    assert calendar.is_business_day(date(2026, 3, 8))
    assert PaydaySchedule(type="payday").local_time == time(9, 0)
