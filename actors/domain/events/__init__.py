"""The registry of every event payrisk records, by its stored `event_type`.

`make_event(type, **fields)` and `parse_event(type, data)` are the only ways from a name to an event: an unknown
name raises `UnknownEventError`, a missing, unknown or mistyped field `InvalidEventError`. `dump_event` gives back
exactly the JSON that was given (fields not given are not written), so a stored log parses and dumps unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from actors.domain.events.base import (
    CustomerEvent,
    DomainEvent,
    EventError,
    InvalidEventError,
    InvoiceEvent,
    IsoTime,
    Json,
    UnknownEventError,
)
from actors.domain.events.customer import (
    CustomerForgotten,
    DeclineDetailsReceived,
    DeclineJoined,
    LateEventIgnored,
    NotificationRequested,
    PaymentMethodKnown,
    PaymentMethodUpdated,
    ProfileUpdated,
    ShadowDecision,
    SubscriptionChanged,
)
from actors.domain.events.incidents import IncidentOpened, IncidentResolved, MonitorEvent, SpikeDetected
from actors.domain.events.invoice import (
    AttemptEvent,
    AttemptFailed,
    AttemptStarted,
    AttemptSucceeded,
    AttemptUnknown,
    AwaitingCustomer,
    DetailsFetched,
    DetailsRequested,
    Escalated,
    Exhausted,
    FailureClassified,
    Halted,
    InvoiceClosed,
    InvoiceRecovered,
    OperatorActed,
    PaymentFailed,
    PlanEvent,
    RetryPaused,
    RetryScheduled,
    UnknownCodeSeen,
)

_CUSTOMER: tuple[type[CustomerEvent], ...] = (
    PaymentFailed, DeclineDetailsReceived, DeclineJoined, DetailsRequested, DetailsFetched, FailureClassified,
    UnknownCodeSeen, RetryScheduled, RetryPaused, AttemptStarted, AttemptSucceeded, AttemptFailed, AttemptUnknown,
    AwaitingCustomer, Escalated, Halted, Exhausted, InvoiceRecovered, InvoiceClosed, PaymentMethodUpdated,
    PaymentMethodKnown, SubscriptionChanged, ProfileUpdated, CustomerForgotten, OperatorActed,
    NotificationRequested, ShadowDecision, LateEventIgnored,
)
_MONITOR: tuple[type[MonitorEvent], ...] = (IncidentOpened, IncidentResolved, SpikeDetected)

#: every event type recorded in a customer's stream, by stored name
CUSTOMER_EVENT_TYPES: dict[str, type[CustomerEvent]] = {cls.event_type: cls for cls in _CUSTOMER}
#: every event type recorded in a `monitor:{provider}` stream
MONITOR_EVENT_TYPES: dict[str, type[MonitorEvent]] = {cls.event_type: cls for cls in _MONITOR}
#: every event type payrisk records
EVENT_TYPES: dict[str, type[DomainEvent]] = {**CUSTOMER_EVENT_TYPES, **MONITOR_EVENT_TYPES}


def event_class(event_type: str) -> type[DomainEvent]:
    """The model of `event_type`; `UnknownEventError` when none is registered."""
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        raise UnknownEventError(event_type)
    return cls


def parse_event(event_type: str, data: Mapping[str, Any]) -> DomainEvent:
    """A stored (or about to be stored) event as its model, validated."""
    cls = event_class(event_type)
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise InvalidEventError(event_type, _problems(exc)) from None


def make_event(event_type: str, **fields: Any) -> DomainEvent:
    """An event by its stored name (`make_event("RetryScheduled", invoice_id=…, …)`), validated."""
    return parse_event(event_type, fields)


def dump_event(event: DomainEvent) -> tuple[str, Json]:
    """`(event_type, payload)` as stored: the fields that were given, as they were given."""
    return event.event_type, event.model_dump(exclude_unset=True)


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in exc.errors())


__all__ = [
    "CUSTOMER_EVENT_TYPES", "EVENT_TYPES", "MONITOR_EVENT_TYPES", "AttemptEvent", "AttemptFailed", "AttemptStarted",
    "AttemptSucceeded", "AttemptUnknown", "AwaitingCustomer", "CustomerEvent", "CustomerForgotten",
    "DeclineDetailsReceived", "DeclineJoined", "DetailsFetched", "DetailsRequested", "DomainEvent", "Escalated",
    "EventError", "Exhausted", "FailureClassified", "Halted", "IncidentOpened", "IncidentResolved",
    "InvalidEventError", "InvoiceClosed", "InvoiceEvent", "InvoiceRecovered", "IsoTime", "Json",
    "LateEventIgnored", "MonitorEvent", "NotificationRequested", "OperatorActed", "PaymentFailed",
    "PaymentMethodKnown", "PaymentMethodUpdated", "PlanEvent", "ProfileUpdated", "RetryPaused", "RetryScheduled",
    "ShadowDecision", "SpikeDetected", "SubscriptionChanged", "UnknownCodeSeen", "UnknownEventError",
    "dump_event", "event_class", "make_event", "parse_event",
]
