"""Decline facts per `decline_code` (data/declines.json) and Stripe-style test cards with forced outcomes."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from simulator.outcomes import Outcome

_DATA = Path(__file__).with_name("data") / "declines.json"


class DeclineFacts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    network_decline_code: str | None
    advice_code: str | None
    mastercard_advice_code: str | None
    hard: bool
    message: str
    outcome_type: str
    outcome_reason: str
    network_status: str
    risk_level: str


class UnknownDeclineCodeError(ValueError):
    pass


@cache
def declines() -> dict[str, DeclineFacts]:
    raw = json.loads(_DATA.read_text())["codes"]
    return {name: DeclineFacts.model_validate(facts) for name, facts in raw.items()}


def is_hard(decline_code: str) -> bool:
    """A hard decline never recovers on the same card (a new payment method is needed)."""
    facts = declines().get(decline_code)
    return facts.hard if facts else False


def declined(decline_code: str, *, with_network_advice: bool) -> Outcome:
    """The outcome of a decline with `decline_code`; `with_network_advice` adds the Mastercard advice code."""
    facts = declines().get(decline_code)
    if facts is None:
        raise UnknownDeclineCodeError(f"unknown decline_code {decline_code!r} (known: {', '.join(sorted(declines()))})")
    return Outcome(
        succeeded=False,
        code=facts.code,
        decline_code=decline_code,
        advice_code=facts.advice_code,
        network_advice_code=facts.mastercard_advice_code if with_network_advice else None,
        network_decline_code=facts.network_decline_code,
        outcome_type=facts.outcome_type,
        outcome_reason=facts.outcome_reason,
        network_status=facts.network_status,
        risk_level=facts.risk_level,
        message=facts.message,
    )


class KnownCard(BaseModel):
    """A Stripe test payment method: its brand and, unless None, the decline every charge gets.
    (Named "known", not "test", so that pytest never collects it.)"""

    model_config = ConfigDict(frozen=True, extra="forbid")

    brand: str
    last4: str
    forced_decline: str | None = None


SUCCEED = "succeed"
#: Forces an off-session attempt that needs the customer's authentication (3DS/SCA): no charge is made.
SCA = "sca"
AUTHENTICATION_REQUIRED = "authentication_required"


def forced_outcome(value: str | None) -> str | None:
    """A card's forced outcome as stored: "succeed", a known decline_code, or None (the model decides).
    "sca" is an alias of `authentication_required`. Unknown codes raise UnknownDeclineCodeError."""
    if value is None or value == SUCCEED:
        return value
    code = AUTHENTICATION_REQUIRED if value == SCA else value
    declined(code, with_network_advice=False)
    return code

#: Stripe's test payment-method ids (and their card numbers) → brand and forced result.
KNOWN_CARDS: dict[str, KnownCard] = {
    "pm_card_visa": KnownCard(brand="visa", last4="4242"),
    "pm_card_mastercard": KnownCard(brand="mastercard", last4="4444"),
    "pm_card_amex": KnownCard(brand="amex", last4="8431"),
    "pm_card_chargeDeclined": KnownCard(brand="visa", last4="0002", forced_decline="generic_decline"),
    "pm_card_visa_chargeDeclined": KnownCard(brand="visa", last4="0002", forced_decline="generic_decline"),
    "pm_card_chargeCustomerFail": KnownCard(brand="visa", last4="0341", forced_decline="generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": KnownCard(
        brand="visa", last4="9995", forced_decline="insufficient_funds"
    ),
    "pm_card_chargeDeclinedLostCard": KnownCard(brand="visa", last4="9987", forced_decline="lost_card"),
    "pm_card_chargeDeclinedStolenCard": KnownCard(brand="visa", last4="9979", forced_decline="stolen_card"),
    "pm_card_chargeDeclinedExpiredCard": KnownCard(brand="visa", last4="0069", forced_decline="expired_card"),
    "pm_card_chargeDeclinedIncorrectCvc": KnownCard(brand="visa", last4="0127", forced_decline="incorrect_cvc"),
    "pm_card_chargeDeclinedProcessingError": KnownCard(brand="visa", last4="0119", forced_decline="processing_error"),
    "pm_card_radarBlock": KnownCard(brand="visa", last4="0019", forced_decline="fraudulent"),
    # Off-session charges always need authentication (Stripe's 4000 0027 6000 3184).
    "pm_card_authenticationRequired": KnownCard(
        brand="visa", last4="3184", forced_decline=AUTHENTICATION_REQUIRED
    ),
    # Not a Stripe name: a Mastercard that declines for insufficient funds with a Merchant Advice Code.
    "pm_card_mastercard_chargeDeclinedInsufficientFunds": KnownCard(
        brand="mastercard", last4="0101", forced_decline="insufficient_funds"
    ),
}

_NUMBERS = {
    "4242424242424242": "pm_card_visa",
    "5555555555554444": "pm_card_mastercard",
    "378282246310005": "pm_card_amex",
    "4000000000000002": "pm_card_chargeDeclined",
    "4000000000000341": "pm_card_chargeCustomerFail",
    "4000000000009995": "pm_card_chargeDeclinedInsufficientFunds",
    "4000000000009987": "pm_card_chargeDeclinedLostCard",
    "4000000000009979": "pm_card_chargeDeclinedStolenCard",
    "4000000000000069": "pm_card_chargeDeclinedExpiredCard",
    "4000000000000127": "pm_card_chargeDeclinedIncorrectCvc",
    "4000000000000119": "pm_card_chargeDeclinedProcessingError",
    "4100000000000019": "pm_card_radarBlock",
    "4000002760003184": "pm_card_authenticationRequired",
}


def known_card(name_or_number: str) -> KnownCard | None:
    """The test card for a `pm_card_…` id, a `tok_…` token of the same suffix (`tok_visa`,
    `tok_chargeDeclinedInsufficientFunds`, …), or a test card number."""
    key = _NUMBERS.get(name_or_number, name_or_number)
    if key.startswith("tok_"):
        key = "pm_card_" + key.removeprefix("tok_")
    return KNOWN_CARDS.get(key)
