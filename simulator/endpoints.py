"""Webhook endpoints: where events go, and in which API version and form each endpoint receives them.

Like Stripe, every endpoint has its own `api_version`, and an event is rendered in it when it is queued for that
endpoint (so one account can send the legacy and the basil shapes at once). `enabled_events` subscribes to a
subset (`*` = everything). Two options make an awkward sender that Stripe itself is not: `expand` sends invoice
`charge` / `payment_intent` as objects instead of ids (pre-basil versions only), and `omit_previous_attributes`
drops `data.previous_attributes`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from simulator.versions import valid_version

DEFAULT_ENDPOINT = "we_default"
Expandable = Literal["charge", "payment_intent"]


class EndpointOptions(BaseModel):
    """What an endpoint receives, besides its URL, secret and version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled_events: tuple[str, ...] = ("*",)
    expand: tuple[Expandable, ...] = ()
    omit_previous_attributes: bool = False

    @field_validator("enabled_events")
    @classmethod
    def _some_events(cls, events: tuple[str, ...]) -> tuple[str, ...]:
        if not events:
            raise ValueError("enabled_events must name at least one event type (or '*')")
        return events


class EndpointConfig(EndpointOptions):
    """An extra endpoint given in the settings (the default one comes from `webhook_url` / `api_version`)."""

    url: str | None = None
    api_version: str | None = None  # None: the account's default version
    secret: str | None = None  # None: the account's webhook secret
    id: str | None = None


class WebhookEndpoint(EndpointOptions):
    id: str
    url: str | None  # None: deliveries stay pending (readable at /_sim/webhooks and GET /v1/events)
    secret: str
    api_version: str

    @field_validator("api_version")
    @classmethod
    def _version(cls, version: str) -> str:
        return valid_version(version)

    def receives(self, event_type: str) -> bool:
        return "*" in self.enabled_events or event_type in self.enabled_events

    def updated(self, patch: dict[str, Any]) -> WebhookEndpoint:
        """This endpoint with `patch` applied and validated (the id cannot change; unknown names are errors)."""
        if "id" in patch and patch["id"] != self.id:
            raise ValueError("an endpoint's id cannot change")
        return WebhookEndpoint.model_validate({**self.model_dump(), **patch})

    def as_json(self) -> dict[str, Any]:
        return {"object": "webhook_endpoint", "status": "enabled", **self.model_dump(mode="json")}
