"""Segmentation: ordered rules over a customer profile, first match wins, each naming a strategy."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from strategies.calendar import Countries, default_countries


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CustomerProfile(_Frozen):
    """What we know of a customer when a payment fails (provider data, the profile API, the event store).

    Amounts are minor units in ``currency`` (lower-case ISO 4217). ``days_since_last_failure`` is None
    when the customer never failed before this case. ``tenure_days`` is None when nobody knows since when the
    customer has been one: it then matches neither a minimum nor a maximum tenure (an unknown customer is
    neither "new" nor "loyal").
    """

    customer_id: str
    country: str | None = None
    timezone: str | None = None  # IANA name; derived from ``country`` when absent
    currency: str = "usd"
    mrr: int = Field(default=0, ge=0)
    invoice_amount: int = Field(default=0, ge=0)
    tenure_days: int | None = Field(default=None, ge=0)
    past_failures: int = Field(default=0, ge=0)
    past_recoveries: int = Field(default=0, ge=0)
    days_since_last_failure: int | None = Field(default=None, ge=0)
    plan: str | None = None
    tags: frozenset[str] = frozenset()
    email: str | None = None

    @property
    def is_first_failure(self) -> bool:
        return self.past_failures == 0


class Conditions(_Frozen):
    """Every condition set must hold (AND); an empty object matches everyone.

    Money thresholds are per currency: a profile in a currency the rule does not list does not match.
    """

    min_mrr: dict[str, int] | None = None
    max_mrr: dict[str, int] | None = None
    min_invoice_amount: dict[str, int] | None = None
    max_invoice_amount: dict[str, int] | None = None
    countries: frozenset[str] | None = None
    sca_region: bool | None = None
    min_tenure_days: int | None = None
    max_tenure_days: int | None = None
    first_failure: bool | None = None
    min_past_failures: int | None = None
    max_past_failures: int | None = None
    min_past_recoveries: int | None = None
    max_past_recoveries: int | None = None
    min_days_since_last_failure: int | None = None
    max_days_since_last_failure: int | None = None
    plans: frozenset[str] | None = None
    tags_any: frozenset[str] | None = None
    tags_all: frozenset[str] | None = None

    @field_validator("min_mrr", "max_mrr", "min_invoice_amount", "max_invoice_amount")
    @classmethod
    def _lower_iso_currencies(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        for code in value or {}:
            if len(code) != 3 or not code.isalpha() or not code.islower():
                raise ValueError(f"currency {code!r} must be a lower-case ISO 4217 code")
        return value

    @field_validator("countries")
    @classmethod
    def _upper_iso_countries(cls, value: frozenset[str] | None) -> frozenset[str] | None:
        for code in value or ():
            if len(code) != 2 or not code.isalpha() or not code.isupper():
                raise ValueError(f"country {code!r} must be two upper-case letters")
        return value

    def is_empty(self) -> bool:
        return not self.model_dump(exclude_none=True)


class SegmentRule(_Frozen):
    segment: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    strategy: str
    description: str = ""
    when: Conditions = Conditions()


class SegmentRules(_Frozen):
    """``strategies/segments.json``: ordered; the last rule must match everyone."""

    id: str
    version: int = Field(ge=1)
    description: str
    rules: tuple[SegmentRule, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _well_formed(self) -> SegmentRules:
        names = [rule.segment for rule in self.rules]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"rules: segment names must be unique ({', '.join(duplicates)})")
        if not self.rules[-1].when.is_empty():
            raise ValueError(
                f"rules.{len(self.rules) - 1}.when: the last rule must match everyone (empty 'when')"
            )
        return self


class SegmentChoice(_Frozen):
    segment: str
    strategy_id: str
    rule_index: int


def select_segment(
    rules: SegmentRules, profile: CustomerProfile, countries: Countries | None = None
) -> SegmentChoice:
    """The first rule whose conditions all hold for ``profile`` (the catch-all last rule at worst)."""
    sca = (countries or default_countries()).of(profile.country).sca
    for index, rule in enumerate(rules.rules):
        if matches(rule.when, profile, sca=sca):
            return SegmentChoice(segment=rule.segment, strategy_id=rule.strategy, rule_index=index)
    raise AssertionError("unreachable: the last rule matches everyone")  # pragma: no cover


def matches(when: Conditions, profile: CustomerProfile, *, sca: bool) -> bool:
    """Do all of ``when``'s conditions hold?"""
    return (
        _value(when, profile)
        and _geography(when, profile, sca)
        and _history(when, profile)
        and _tags(when, profile)
    )


_Bound = Callable[[int | None, int | None], bool]


def _at_least(threshold: int | None, value: int | None) -> bool:
    return threshold is None or (value is not None and value >= threshold)


def _at_most(threshold: int | None, value: int | None) -> bool:
    return threshold is None or (value is not None and value <= threshold)


def _money(threshold: dict[str, int] | None, currency: str, value: int, test: _Bound) -> bool:
    """A per-currency threshold; a currency the rule does not list never matches."""
    if threshold is None:
        return True
    limit = threshold.get(currency)
    return limit is not None and test(limit, value)


def _value(when: Conditions, p: CustomerProfile) -> bool:
    return (
        _money(when.min_mrr, p.currency, p.mrr, _at_least)
        and _money(when.max_mrr, p.currency, p.mrr, _at_most)
        and _money(when.min_invoice_amount, p.currency, p.invoice_amount, _at_least)
        and _money(when.max_invoice_amount, p.currency, p.invoice_amount, _at_most)
    )


def _geography(when: Conditions, p: CustomerProfile, sca: bool) -> bool:
    in_countries = when.countries is None or (p.country or "").upper() in when.countries
    return in_countries and (when.sca_region is None or when.sca_region == sca)


def _history(when: Conditions, p: CustomerProfile) -> bool:
    # No earlier failure counts as "infinitely long ago": it passes a minimum, fails a maximum.
    # An unknown tenure (None) fails both a minimum and a maximum.
    since = p.days_since_last_failure
    return (
        _at_least(when.min_tenure_days, p.tenure_days)
        and _at_most(when.max_tenure_days, p.tenure_days)
        and (when.first_failure is None or when.first_failure == p.is_first_failure)
        and _at_least(when.min_past_failures, p.past_failures)
        and _at_most(when.max_past_failures, p.past_failures)
        and _at_least(when.min_past_recoveries, p.past_recoveries)
        and _at_most(when.max_past_recoveries, p.past_recoveries)
        and (
            when.min_days_since_last_failure is None
            or since is None
            or since >= when.min_days_since_last_failure
        )
        and _at_most(when.max_days_since_last_failure, since)
    )


def _tags(when: Conditions, p: CustomerProfile) -> bool:
    return (
        (when.plans is None or p.plan in when.plans)
        and (when.tags_any is None or bool(when.tags_any & p.tags))
        and (when.tags_all is None or when.tags_all <= p.tags)
    )
