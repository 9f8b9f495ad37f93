"""What billing operations report: event types with a renderer of the object, called once per API version.

The simulator renders the object when it records the event (in the account's version) and again for each
webhook endpoint that receives it (in that endpoint's version), all at the moment the event happens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulator.versions import View

Obj = dict[str, Any]
#: The object as a view (API version) shows it, rendered from the current state.
Render = Callable[[View], Obj]


@dataclass(frozen=True, slots=True)
class RequestRef:
    """The API request that caused an event (Stripe's `request.id` / `request.idempotency_key`)."""

    id: str | None = None
    idempotency_key: str | None = None
    api_key: str | None = None  # the secret key the request authenticated with (which account's key was used)


AUTOMATIC = RequestRef()

#: (event type, renderer of data.object, data.previous_attributes or None, request)
Emit = Callable[[str, Render, Obj | None, RequestRef], None]
