"""What every recorded event is: a frozen, strictly validated model whose class name is its stored type.

Events are validated once, where they are made (the decision that emits them) or read (a stored log entering the
fold). Strict validation keeps values as they are — a stored `1` never becomes `True` — so folding a validated
event gives the state that folding its stored JSON always gave. Times stay ISO-8601 text, exactly as stored.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

Json = dict[str, Any]
#: an ISO-8601 time as recorded (`datetime.isoformat()`); kept as text so a stored log dumps back byte for byte
IsoTime = str


class DomainEvent(BaseModel):
    """One recorded fact. Fields without a default are required; a field not given is not stored."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    #: the stored `event_type` (the class name, set for every subclass)
    event_type: ClassVar[str] = "DomainEvent"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.event_type = cls.__name__


class CustomerEvent(DomainEvent):
    """An event of a customer's stream: folded into the customer's state by `actors.domain.case`."""


class InvoiceEvent(CustomerEvent):
    """An event about one invoice's recovery case."""

    invoice_id: str


class EventError(Exception):
    """A recorded or emitted event the registry does not accept."""


class UnknownEventError(EventError):
    """No event type of this name is registered (a misspelling, or a log from a newer payrisk)."""

    def __init__(self, event_type: str, why: str = "is not a registered event type") -> None:
        super().__init__(f"{event_type!r} {why}")
        self.event_type = event_type


class InvalidEventError(EventError):
    """An event's fields do not match its type: a required field is missing, one is unknown or of a wrong type."""

    def __init__(self, event_type: str, problems: str) -> None:
        super().__init__(f"{event_type}: {problems}")
        self.event_type = event_type
