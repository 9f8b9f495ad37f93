"""What billing operations report: event types with the object rendered for the webhook endpoint's version."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RequestRef:
    """The API request that caused an event (Stripe's `request.id` / `request.idempotency_key`)."""

    id: str | None = None
    idempotency_key: str | None = None


AUTOMATIC = RequestRef()

#: (event type, data.object, data.previous_attributes or None, request)
Emit = Callable[[str, Obj, Obj | None, RequestRef], None]
