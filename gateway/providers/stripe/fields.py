"""Readers for fields of a parsed Stripe object: the wrong type reads as absent, never as an exception."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from gateway.providers.base import PayloadError

Obj = Mapping[str, Any]
EMPTY: Obj = MappingProxyType({})
MAX_UNIX_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second a datetime can hold


def required_str(obj: Obj, field: str, where: str) -> str:
    """`obj[field]` as a non-empty string; PayloadError naming `where` otherwise."""
    value = text(obj.get(field))
    if value is None:
        raise PayloadError(f"{where} is missing or not a string")
    return value


def expandable_id(value: Any) -> str | None:
    """An expandable field: an id string, or an expanded object carrying its id."""
    return text(value.get("id")) if isinstance(value, dict) else text(value)


def text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def unix_time(value: Any) -> datetime | None:
    seconds = integer(value)
    if seconds is None or not 0 <= seconds <= MAX_UNIX_TIME:
        return None
    return datetime.fromtimestamp(seconds, UTC)


def mapping(value: Any) -> Obj:
    return value if isinstance(value, dict) else EMPTY


def array(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
