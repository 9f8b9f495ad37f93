"""Decision records: what one decision produced, written in one transaction by the customer's home."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Plan:
    """What the strategy says to do after a classified failure."""

    action: str  # retry | await_customer | escalate | halt | final
    at: datetime | None
    attempt_no: int
    max_attempts: int
    explanation: str
    strategy: Json  # {"id", "version", "segment"}
    email_template: str | None = None
    final_action: str | None = None
    alert: str | None = None  # engineering | fraud | first_failure


class Planner(Protocol):
    def plan(self, *, customer: Json, case: Json, classification: Json, now: datetime,
             card_history: Sequence[datetime]) -> Plan: ...


@dataclass(frozen=True, slots=True)
class Context:
    now: datetime
    classify: Callable[[str, Json], Json]
    planner: Planner
    retry_mode: str = "own"  # own: payrisk charges; observe: shadow decisions only
    provider: str = "stripe"
    card_history: Mapping[str, Sequence[datetime]] = field(default_factory=dict)
    #: the last resort: classify with whatever details arrived (the API read and the joins come first)
    classify_wait: timedelta = timedelta(minutes=2)
    reconcile_after: timedelta = timedelta(minutes=10)
    #: how soon a case retries after the customer updated their card
    resume_delay: timedelta = timedelta(minutes=1)
    #: the provider API can be read for what a delivery lacks (a key is configured): see `DetailsFetch`
    fetch_details: bool = False
    #: decline details with no id linking them to an invoice join it when customer, amount and currency match
    #: and they happened within this window of the invoice failure (recorded as an *inferred* join)
    join_window: timedelta = timedelta(minutes=10)
    branding: Json = field(default_factory=dict)
    #: providers with an open incident (CONFIG_ERROR / RATE_LIMITED burst) for this tenant: retries wait
    paused_providers: frozenset[str] = frozenset()
    pause_recheck: timedelta = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class TimerCmd:
    key: str
    due_at: datetime | None  # None cancels the pending timer with this key
    payload: Json = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutboxCmd:
    topic: str
    idempotency_key: str
    payload: Json


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """A provider call to make after commit; `idempotency_key` is also the attempt's ledger key."""

    invoice_id: str
    attempt_no: int
    idempotency_key: str
    amount: int
    currency: str | None
    card: Json
    #: the instrument to charge (the one the customer just set up); None: the provider's default order
    payment_method_id: str | None = None
    #: what providers without an invoice to pay need (Adyen: the stored method; Braintree: the subscription)
    stored_payment_method_id: str | None = None
    subscription_id: str | None = None


@dataclass(frozen=True, slots=True)
class DetailsFetch:
    """A read of the provider API for what a failure's deliveries lacked, made after commit by the classifier
    pool, at most once per failure and with a timeout; its answer comes back to the customer as an event."""

    invoice_id: str
    failure_no: int
    payment_intent_id: str | None
    charge_id: str | None
    subscription_id: str | None
    codes: bool  # the decline codes are missing
    customer: bool  # the customer's tenure is unknown: read the customer (and subscription)


@dataclass(slots=True)
class Decision:
    state: Json
    #: `(event_type, payload)` as stored: each emitted event through `actors.domain.events.dump_event`, in order
    events: list[tuple[str, Json]] = field(default_factory=list)
    timers: list[TimerCmd] = field(default_factory=list)
    outbox: list[OutboxCmd] = field(default_factory=list)
    charges: list[ChargeRequest] = field(default_factory=list)
    reconciles: list[ChargeRequest] = field(default_factory=list)
    fetches: list[DetailsFetch] = field(default_factory=list)
    #: rows for the attempt ledger (`store.attempts.Attempt`: the provider's own retries seen in the decided
    #: events), written in the decision's transaction with its other writes
    ledger: list[Any] = field(default_factory=list)


def attempt_key(tenant_id: str, invoice_id: str, attempt_no: int) -> str:
    """The deterministic idempotency key of one retry attempt (invariant I3)."""
    return f"payrisk:{tenant_id}:{invoice_id}:{attempt_no}"
