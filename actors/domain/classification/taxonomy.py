"""The failure taxonomy: what a failed payment means for recovery, whichever provider reported it.

Every provider code maps to one `Category`; the category alone decides whether a retry is allowed at all
(`is_retryable`). Reasons, customer actions and network rules refine what the strategy does next.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Category(StrEnum):
    """The seven kinds of failure. Strategies give each one a behaviour; the taxonomy fixes the contract."""

    #: The issuer will never approve this credential (lost, stolen, closed, revoked, expired ...):
    #: never retry; only a new or updated payment method helps.
    HARD_DECLINE = "HARD_DECLINE"
    #: The issuer cannot approve now (funds, limits, generic refusals): retry later, within network limits.
    SOFT_DECLINE = "SOFT_DECLINE"
    #: Our or the merchant's setup is wrong (API key, account, request data): hold retries, flag engineering.
    CONFIG_ERROR = "CONFIG_ERROR"
    #: The provider throttled us or a request collided: retry with exponential backoff.
    RATE_LIMITED = "RATE_LIMITED"
    #: The provider, issuer or a fraud rule suspects fraud: report and halt, never retry.
    FRAUD_FLAGGED = "FRAUD_FLAGGED"
    #: The provider, processor or issuer could not be reached or failed internally: retry soon.
    NETWORK_ERROR = "NETWORK_ERROR"
    #: Strong customer authentication (3DS/SCA) is required: only the customer can complete it.
    AUTHENTICATION_REQUIRED = "AUTHENTICATION_REQUIRED"


RETRYABLE: frozenset[Category] = frozenset({Category.SOFT_DECLINE, Category.RATE_LIMITED, Category.NETWORK_ERROR})


def is_retryable(category: Category) -> bool:
    """May the same credential be charged again without the customer doing anything?"""
    return category in RETRYABLE


class CustomerAction(StrEnum):
    """What the customer must do before a charge can succeed."""

    NONE = "none"
    UPDATE_PAYMENT_METHOD = "update_payment_method"
    AUTHENTICATE = "authenticate"
    CONTACT_ISSUER = "contact_issuer"


class NetworkRule(BaseModel):
    """The card-network rule a decline falls under (reference/networks.md), or none.

    `visa_category` 1 means never retry; 2 and 4 retry within the 30-day budget; 3 only after the data
    changed.
    `mastercard_advice` is the Merchant Advice Code (03 and 21 stop the series; 24–30 set minimum waits).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    visa_category: int | None = Field(default=None, ge=1, le=4)
    mastercard_advice: str | None = None
    summary: str = "none"

    @property
    def is_none(self) -> bool:
        return self.visa_category is None and self.mastercard_advice is None


NO_NETWORK_RULE = NetworkRule()


class Classification(BaseModel):
    """The verdict on one failed attempt, with everything needed to explain and replay it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    category: Category
    reason: str  # normalized across providers: insufficient_funds, expired_card, lost_or_stolen, ...
    retryable: bool
    customer_action: CustomerAction
    network_rule: NetworkRule
    min_delay_seconds: int = Field(ge=0)  # never retry sooner than this after the failed attempt
    max_attempts_cap: int | None = Field(default=None, ge=1)  # a limit below the strategy's own, if any
    raw_codes: dict[str, str]  # every code the provider gave, as strings, keyed by DeclineInfo field
    table_id: str  # provider table, plus "+tenant.vN" when a tenant override applied
    table_version: int
    network_table_version: int
    explanation: str  # one line, for the trail ("why this category")
    unknown: bool  # True when a code was not in the table and the safe fallback decided
    unknown_code: str | None = None  # "field=value" of the code to add to the table, when unknown
    matched_on: str  # the field whose row won, e.g. "decline_code", or "fallback"
