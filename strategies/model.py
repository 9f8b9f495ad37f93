"""A retry strategy as validated data: per-category behaviour, emails, final action.

Validation rejects what would break the card networks' rules (too many attempts per 30 days or per day,
windows longer than any PSP allows) and what would contradict the failure taxonomy (retrying a hard
decline, retrying fraud), so a strategy that loads is one the planner may follow blindly.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from strategies.network import NetworkLimits
from strategies.schedules import BusinessHours, ExponentialSchedule, LadderSchedule, Schedule

Category = Literal[
    "HARD_DECLINE",
    "SOFT_DECLINE",
    "CONFIG_ERROR",
    "RATE_LIMITED",
    "FRAUD_FLAGGED",
    "NETWORK_ERROR",
    "AUTHENTICATION_REQUIRED",
]
CATEGORIES: tuple[Category, ...] = get_args(Category)
EmailTemplate = Literal["payment_failed", "action_required", "final_notice", "recovered"]
FinalAction = Literal["cancel_subscription", "mark_uncollectible", "leave_past_due"]

_SAFE = NetworkLimits()
MAX_ATTEMPTS = _SAFE.visa_per_30d  # the strictest 30-day network budget (Visa, safe default)
MAX_PER_DAY = _SAFE.per_day  # Mastercard excessive-attempts rule
MAX_WINDOW_DAYS = 60  # Stripe's longest Smart Retries window; past it the 30-day budgets stop meaning much

#: Which actions each category may take: the taxonomy's contract, not a preference.
ALLOWED_ACTIONS: dict[str, frozenset[str]] = {
    "HARD_DECLINE": frozenset({"await_customer", "halt"}),
    "SOFT_DECLINE": frozenset({"retry", "await_customer"}),
    "CONFIG_ERROR": frozenset({"escalate"}),
    "RATE_LIMITED": frozenset({"retry"}),
    "FRAUD_FLAGGED": frozenset({"halt"}),
    "NETWORK_ERROR": frozenset({"retry"}),
    "AUTHENTICATION_REQUIRED": frozenset({"await_customer"}),
}
_BACKOFF_ONLY = ("RATE_LIMITED", "NETWORK_ERROR")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetryPolicy(_Frozen):
    """Retry on a schedule (optionally per decline reason) up to ``max_attempts`` charges in the window."""

    action: Literal["retry"]
    schedule: Schedule
    reason_schedules: dict[str, Schedule] = {}
    max_attempts: int = Field(ge=2, le=MAX_ATTEMPTS)  # every charge, the original failed one included
    max_window_days: float = Field(gt=0, le=MAX_WINDOW_DAYS)

    @model_validator(mode="after")
    def _fits_network_limits(self) -> RetryPolicy:
        for schedule in (self.schedule, *self.reason_schedules.values()):
            offsets = _min_offsets(schedule, self.max_attempts)
            if offsets is not None:
                _check_offsets(offsets, self.max_window_days)
        return self

    def schedule_for(self, reason: str) -> Schedule:
        return self.reason_schedules.get(reason, self.schedule)


class AwaitPolicy(_Frozen):
    """Wait for the customer (authenticate, update the card) until a deadline."""

    action: Literal["await_customer"]
    deadline_hours: float = Field(gt=0)
    max_window_days: float = Field(gt=0, le=MAX_WINDOW_DAYS)


class EscalatePolicy(_Frozen):
    """Flag engineering; re-check the case after ``deadline_hours``."""

    action: Literal["escalate"]
    deadline_hours: float = Field(gt=0)


class HaltPolicy(_Frozen):
    """Stop the case (report it); nothing more is attempted."""

    action: Literal["halt"]


Policy = Annotated[RetryPolicy | AwaitPolicy | EscalatePolicy | HaltPolicy, Field(discriminator="action")]


class CustomerAction(_Frozen):
    """Reasons that only the customer can fix, whatever their category, and how long we wait for them."""

    reasons: frozenset[str]
    deadline_hours: float = Field(gt=0)
    max_window_days: float = Field(gt=0, le=MAX_WINDOW_DAYS)


class EmailStep(_Frozen):
    after_attempt: int = Field(ge=1)
    template: EmailTemplate


class Strategy(_Frozen):
    """One strategy template (``strategies/templates/<id>.json``)."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: int = Field(ge=1)
    description: str = Field(min_length=1)
    categories: dict[Category, Policy]
    customer_action: CustomerAction
    business_hours: BusinessHours | None = None
    emails: tuple[EmailStep, ...] = ()
    await_email: EmailTemplate | None = "action_required"
    final_email: EmailTemplate | None = "final_notice"
    recovered_email: EmailTemplate | None = "recovered"
    final_action: FinalAction
    alert_on_first_failure: bool = False

    @model_validator(mode="after")
    def _coherent(self) -> Strategy:
        _check_categories(self.categories)
        _check_emails(self.emails)
        return self

    def policy(self, category: str) -> RetryPolicy | AwaitPolicy | EscalatePolicy | HaltPolicy:
        """The policy of ``category``; an unknown category is treated as a hard decline (never retried)."""
        for name, policy in self.categories.items():
            if name == category:
                return policy
        return self.categories["HARD_DECLINE"]

    def email_after(self, attempt: int) -> str | None:
        return next((step.template for step in self.emails if step.after_attempt == attempt), None)


def _check_categories(
    categories: dict[Category, RetryPolicy | AwaitPolicy | EscalatePolicy | HaltPolicy],
) -> None:
    missing = [name for name in CATEGORIES if name not in categories]
    if missing:
        raise ValueError(f"categories: missing {', '.join(missing)} (every category must be spelled out)")
    for name, policy in categories.items():
        if policy.action not in ALLOWED_ACTIONS[name]:
            allowed = " or ".join(sorted(ALLOWED_ACTIONS[name]))
            raise ValueError(f"categories.{name}.action: {policy.action} is not allowed; use {allowed}")
        is_backoff = isinstance(policy, RetryPolicy) and isinstance(policy.schedule, ExponentialSchedule)
        if name in _BACKOFF_ONLY and not is_backoff:
            raise ValueError(
                f"categories.{name}.schedule: must be exponential (backoff for transient errors)"
            )


def _check_emails(emails: tuple[EmailStep, ...]) -> None:
    for before, after in zip(emails, emails[1:], strict=False):
        if after.after_attempt <= before.after_attempt:
            raise ValueError(
                f"emails: after_attempt must strictly increase "
                f"({after.after_attempt} follows {before.after_attempt})"
            )


def _min_offsets(schedule: Schedule, max_attempts: int) -> list[timedelta] | None:
    """The earliest possible offset of each charge from the first failure, or None if it depends on dates."""
    if isinstance(schedule, LadderSchedule):
        if len(schedule.steps) < max_attempts - 1:
            raise ValueError(
                f"schedule.steps: {len(schedule.steps)} steps cannot cover max_attempts {max_attempts} "
                f"(needs {max_attempts - 1} retries)"
            )
        return [timedelta(0)] + [schedule.offset(n) for n in range(1, max_attempts)]
    if isinstance(schedule, ExponentialSchedule):
        offsets, total = [timedelta(0)], timedelta(0)
        for n in range(1, max_attempts):
            total += schedule.delay(n, 1.0)
            offsets.append(total)
        return offsets
    return None  # payday and learned retries keep a minimum gap: at most a few per day by construction


def _check_offsets(offsets: list[timedelta], window_days: float) -> None:
    window = timedelta(days=window_days)
    for n, offset in enumerate(offsets[1:], start=1):
        if offset > window:
            raise ValueError(f"schedule: retry {n} at {offset} is past max_window_days {window_days:g}")
    for index, start in enumerate(offsets):
        in_day = sum(1 for offset in offsets[index:] if offset < start + timedelta(days=1))
        if in_day > MAX_PER_DAY:
            raise ValueError(
                f"schedule: {in_day} attempts within 24 h exceed the network cap of {MAX_PER_DAY}"
            )
