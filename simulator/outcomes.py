"""What a charge attempt returns: the `Outcome`, the `ChargeContext` a model decides from, and the model protocol.

A model is any object with `decide(ctx) -> Outcome`; `simulator.models.load_model(name)` picks one by name.
Everything random comes from `ctx.rng`, seeded per (simulator seed, invoice, attempt), so a run replays exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict


class Outcome(BaseModel):
    """One charge attempt's result, in Stripe's vocabulary (see `data/declines.json`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    succeeded: bool
    code: str | None = None  # error `code` / charge `failure_code`: card_declined, expired_card, ...
    decline_code: str | None = None
    advice_code: str | None = None
    network_advice_code: str | None = None
    network_decline_code: str | None = None
    outcome_type: str = "authorized"
    outcome_reason: str | None = None
    network_status: str = "approved_by_network"
    risk_level: str = "normal"
    message: str | None = None

    @classmethod
    def success(cls) -> Outcome:
        return cls(succeeded=True)


class CardFacts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    brand: str  # visa, mastercard, amex, discover
    funding: str  # credit, debit, prepaid
    country: str
    fingerprint: str


class InvoiceFacts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    customer: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class ChargeContext:
    """Everything a model may look at for one attempt."""

    card: CardFacts
    invoice: InvoiceFacts
    attempt: int  # 1 for the invoice's first charge attempt, counting every attempt (manual or automatic)
    days_since_first_failure: float | None  # None until this invoice has failed once
    previous_decline: str | None  # the last decline_code on this invoice *with this card*; None on a new card
    day_of_month: int  # in the customer's local time
    local_hour: int
    rng: random.Random


class OutcomeModel(Protocol):
    name: str

    def decide(self, ctx: ChargeContext) -> Outcome: ...
