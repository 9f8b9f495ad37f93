"""Country calendars: time zone, weekend days, optional holidays and the EU/UK SCA flag.

Data lives in ``strategies/countries.json``; this module only interprets it. Pure apart from zoneinfo.
"""

from __future__ import annotations

import calendar as _stdcal
import functools
from datetime import date, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, field_validator

from strategies.files import PACKAGE_DIR, read_model

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def zone_of(name: str) -> ZoneInfo:
    """The IANA zone for ``name``; ValueError (pydantic-friendly) when the name is unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def weekday_name(day: date) -> Weekday:
    return WEEKDAYS[day.weekday()]


class CountryCalendar(BaseModel):
    """How one country keeps time: its main zone, its weekend, its bank holidays (optional data)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str
    weekend: tuple[Weekday, ...] = ("sat", "sun")
    sca: bool = False  # strong customer authentication applies (EEA + UK): expect 3DS challenges
    holidays: frozenset[date] = frozenset()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone_of(value)
        return value

    @field_validator("weekend")
    @classmethod
    def _some_workday(cls, value: tuple[Weekday, ...]) -> tuple[Weekday, ...]:
        if set(WEEKDAYS) <= set(value):
            raise ValueError("the weekend cannot cover the whole week")
        return value

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_business_day(self, day: date) -> bool:
        return weekday_name(day) not in self.weekend and day not in self.holidays

    def last_business_day(self, year: int, month: int) -> date:
        """The month's last day that is neither weekend nor holiday."""
        day = date(year, month, _stdcal.monthrange(year, month)[1])
        while not self.is_business_day(day):
            day -= timedelta(days=1)
        return day


class Countries(BaseModel):
    """The calendar table, keyed by upper-case ISO 3166-1 alpha-2 code, with a default for the rest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    version: int
    description: str
    default: CountryCalendar
    countries: dict[str, CountryCalendar]

    @field_validator("countries")
    @classmethod
    def _iso_codes(cls, value: dict[str, CountryCalendar]) -> dict[str, CountryCalendar]:
        for code in value:
            if len(code) != 2 or not code.isalpha() or not code.isupper():
                raise ValueError(f"country code {code!r} must be two upper-case letters")
        return value

    def of(self, country: str | None) -> CountryCalendar:
        """The calendar of ``country`` (any case), or the default one."""
        return self.countries.get((country or "").upper(), self.default)


def load_countries(path: Path | None = None) -> Countries:
    """The calendar table from ``path`` (default: the shipped ``strategies/countries.json``)."""
    return read_model(path or PACKAGE_DIR / "countries.json", Countries)


@functools.cache
def default_countries() -> Countries:
    return load_countries()
