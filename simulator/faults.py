"""Switchable faults: API errors before or after a charge, and webhook duplicates, reordering, delays, outages."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Faults(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: 429 before anything runs; like Stripe, nothing is stored under the Idempotency-Key.
    api_rate_limit_rate: float = Field(default=0.0, ge=0, le=1)
    #: 500 before anything runs; stored under the key, so a replay returns the same 500.
    api_error_rate: float = Field(default=0.0, ge=0, le=1)
    #: `POST /v1/invoices/{id}/pay` charges, then answers 500 (stored): the ambiguous case a retry engine must
    #: reconcile by reading the invoice, never by charging again under a new key.
    api_error_after_charge_rate: float = Field(default=0.0, ge=0, le=1)
    webhook_duplicate_rate: float = Field(default=0.0, ge=0, le=1)
    webhook_reorder_window: int = Field(default=0, ge=0)  # shuffle deliveries within windows of this many
    webhook_delay_min_seconds: float = Field(default=0.0, ge=0)  # on the simulator clock
    webhook_delay_max_seconds: float = Field(default=0.0, ge=0)
    webhook_outage: bool = False  # the endpoint is "unreachable": deliveries fail and back off


def updated(current: Faults, patch: dict[str, Any]) -> Faults:
    """`current` with `patch` applied, validated as a whole (unknown names are errors)."""
    return Faults.model_validate({**current.model_dump(), **patch})
