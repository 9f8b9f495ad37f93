"""Classification tables as frozen models: one per provider, one for the card networks, tenant overrides.

A table's `rows` are grouped by the DeclineInfo field they read (`decline_code`, `error_code`, ...). Keys
match case-insensitively; a row may list `aliases` (e.g. Adyen's refusal text next to its numeric code),
and a key `"2109..2999"` covers a numeric range (an exact key always wins over a range).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictInt, model_validator

from actors.domain.classification.taxonomy import Category, CustomerAction, is_retryable

Section = Literal[
    "decline_code",
    "outcome_reason",
    "error_code",
    "advice_code",
    "network_advice_code",
    "error_type",
    "http_status",
]
#: Sections whose rows may be stop signals (explicit "do not retry" advice or a fraud block).
SIGNAL_SECTIONS: frozenset[str] = frozenset({"outcome_reason", "advice_code", "network_advice_code"})
_RANGE = re.compile(r"^(\d+)\.\.(\d+)$")
_STATUS = re.compile(r"^[1-5](\d\d|xx)$")
_ID = r"^[a-z][a-z0-9_-]*$"
_TABLE_ID = r"^[a-z][A-Za-z0-9_+.-]*$"  # "+tenant.vN" marks a table with a tenant override


class Row(BaseModel):
    """What one provider code means. `retryable` is not a field: the category decides it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    category: Category
    reason: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    customer_action: CustomerAction = CustomerAction.NONE
    visa_category: int | None = Field(default=None, ge=1, le=4)  # the Visa category this code usually maps to
    min_delay_seconds: int = Field(default=0, ge=0)
    max_attempts_cap: int | None = Field(default=None, ge=1)
    stop: bool = False  # a stop signal outranks every decline, error and status code
    aliases: tuple[str, ...] = ()
    explanation: str = Field(min_length=1, pattern=r"^[^\n]+$")

    @model_validator(mode="after")
    def _stop_is_never_retryable(self) -> Row:
        if self.stop and is_retryable(self.category):
            raise ValueError(f"stop: a stop signal cannot be {self.category} (it must never be retried)")
        return self


Rows = dict[Section, dict[str, Row]]


class ProviderTable(BaseModel):
    """One provider's codes, versioned. `fallback` decides for codes the table does not know."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=_TABLE_ID)
    version: StrictInt = Field(ge=1)
    description: str = ""
    fallback: Row
    rows: Rows
    _exact: dict[str, dict[str, Row]] = PrivateAttr(default_factory=dict)
    _ranges: dict[str, list[tuple[int, int, Row]]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _build_index(self) -> ProviderTable:
        if self.fallback.max_attempts_cap is None or self.fallback.stop:
            raise ValueError("fallback: the unknown-code fallback needs a max_attempts_cap and no stop")
        for section, rows in self.rows.items():
            self._exact[section], self._ranges[section] = _index(section, rows)
        return self

    def find(self, section: str, value: str) -> Row | None:
        """The row for `value` in `section`: exact key or alias first, then a numeric range."""
        row = self._exact.get(section, {}).get(value.strip().lower())
        if row is not None or not value.isdigit():
            return row
        number = int(value)
        return next((r for first, last, r in self._ranges.get(section, ()) if first <= number <= last), None)

    def codes(self, section: str) -> frozenset[str]:
        """Every exact key and alias of `section`, lower-cased."""
        return frozenset(self._exact.get(section, {}))


def _index(section: str, rows: dict[str, Row]) -> tuple[dict[str, Row], list[tuple[int, int, Row]]]:
    exact: dict[str, Row] = {}
    ranges: list[tuple[int, int, Row]] = []
    for key, row in rows.items():
        _check_row(section, key, row)
        span = _RANGE.match(key)
        if span:
            ranges.append(_range(section, key, int(span[1]), int(span[2]), ranges, row))
            continue
        for name in (key, *row.aliases):
            if name.strip().lower() in exact:
                raise ValueError(f"rows.{section}.{key}: {name!r} is listed twice (as a code or an alias)")
            exact[name.strip().lower()] = row
    return exact, ranges


def _check_row(section: str, key: str, row: Row) -> None:
    if row.stop and section not in SIGNAL_SECTIONS:
        raise ValueError(f"rows.{section}.{key}: stop applies only to {', '.join(sorted(SIGNAL_SECTIONS))}")
    if section == "http_status" and not _STATUS.match(key):
        raise ValueError(f"rows.http_status.{key}: expected a status like 429 or a class like 5xx")


def _range(
    section: str, key: str, first: int, last: int, seen: list[tuple[int, int, Row]], row: Row
) -> tuple[int, int, Row]:
    if first > last or any(first <= b and a <= last for a, b, _ in seen):
        raise ValueError(f"rows.{section}.{key}: range is empty or overlaps another range")
    return first, last, row


class VisaCategory(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    codes: tuple[str, ...]


class NetworkTable(BaseModel):
    """Visa decline categories by raw response code, and Mastercard Merchant Advice Codes as rows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Literal["networks"]
    version: StrictInt = Field(ge=1)
    description: str = ""
    visa_categories: dict[Literal["1", "2", "3", "4"], VisaCategory]
    visa_default_category: Literal[1, 2, 3, 4] = 4
    mastercard_advice: dict[str, Row]
    _visa: dict[str, int] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _build_index(self) -> NetworkTable:
        visa: dict[str, int] = {}
        for number, category in sorted(self.visa_categories.items()):
            for code in category.codes:
                if code.upper() in visa:
                    raise ValueError(f"visa_categories.{number}: {code!r} is already in category {visa[code.upper()]}")
                visa[code.upper()] = int(number)
        self._visa = visa
        return self

    def visa_category(self, code: str) -> int:
        """The Visa category of a raw response code; unlisted codes are the generic category (4)."""
        return self._visa.get(code.strip().upper(), self.visa_default_category)

    def visa_name(self, category: int) -> str:
        found = self.visa_categories.get(str(category))  # type: ignore[call-overload]
        return found.name if found else "generic"

    def advice(self, code: str) -> Row | None:
        return self.mastercard_advice.get(code.strip())


class TenantOverride(BaseModel):
    """A tenant's replacement or extra rows for one provider table, versioned like the tables."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    provider: str = Field(pattern=_ID)
    version: StrictInt = Field(ge=1)
    description: str = ""
    rows: Rows

    def apply(self, base: ProviderTable) -> ProviderTable:
        """The base table with these rows replacing (or adding to) its own; re-validated as a whole."""
        merged = {section: dict(rows) for section, rows in base.rows.items()}
        for section, rows in self.rows.items():
            merged.setdefault(section, {}).update(rows)
        table_id = f"{base.id}+{self.tenant}.v{self.version}"
        return ProviderTable.model_validate({**base.model_dump(), "id": table_id, "rows": merged})
