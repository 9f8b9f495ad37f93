"""Customer-local time: business hours, business days and pay dates, per country calendar."""

from __future__ import annotations

import calendar as _stdcal
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from strategies.calendar import CountryCalendar, weekday_name
from strategies.errors import StrategyError
from strategies.schedules import BusinessHours, PaydaySchedule

_HORIZON_DAYS = 400  # a search that finds no open day within a year means the rules exclude every day


def align_to_hours(
    at: datetime, hours: BusinessHours | None, cal: CountryCalendar, zone: ZoneInfo
) -> datetime:
    """The first moment at or after ``at`` inside business hours on a business day (``at`` if no hours)."""
    if hours is None:
        return at
    local = at.astimezone(zone)
    day = local.date()
    for _ in range(_HORIZON_DAYS):
        if weekday_name(day) in hours.weekdays and cal.is_business_day(day):
            opens = datetime.combine(day, hours.start, tzinfo=zone)
            if local < datetime.combine(day, hours.end, tzinfo=zone):
                return max(local, opens).astimezone(UTC)
        day += timedelta(days=1)
    raise StrategyError(
        "business_hours.weekdays never fall on a business day of this calendar", field="business_hours"
    )


def next_payday(lower: datetime, schedule: PaydaySchedule, cal: CountryCalendar, zone: ZoneInfo) -> datetime:
    """The first pay date (rolled to a business day) at ``local_time`` that is not before ``lower``."""
    day = lower.astimezone(zone).date()
    for _ in range(_HORIZON_DAYS):
        if is_payday(day, schedule, cal):
            candidate = datetime.combine(roll_to_business_day(day, cal), schedule.local_time, tzinfo=zone)
            if candidate >= lower:
                return candidate.astimezone(UTC)
        day += timedelta(days=1)
    raise StrategyError("no pay date within a year", field="schedule")  # pragma: no cover - schema forbids


def is_payday(day: date, schedule: PaydaySchedule, cal: CountryCalendar) -> bool:
    """A configured day of the month (clamped to short months) or the month's last business day."""
    month_end = _stdcal.monthrange(day.year, day.month)[1]
    if day.day in {min(wanted, month_end) for wanted in schedule.days_of_month}:
        return True
    return schedule.last_business_day and day == cal.last_business_day(day.year, day.month)


def roll_to_business_day(day: date, cal: CountryCalendar) -> date:
    while not cal.is_business_day(day):
        day += timedelta(days=1)
    return day
