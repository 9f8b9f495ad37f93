"""Golden coverage: every code listed in the reference files maps to a category, without the fallback.

The lists below are written out from reference/{stripe,adyen,braintree,paddle,networks}.md. When the reference
folder sits next to the repository (../shared/reference), the last tests also parse its markdown tables and
check that these lists miss nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from actors.domain.classification import Category, classify, default_tables
from actors.domain.inbound import DeclineInfo


def codes(text: str) -> list[str]:
    """A whitespace-separated list of codes, as written below."""
    return text.split()


STRIPE_DECLINE_CODES = codes(
    """
authentication_required authentication_not_handled approve_with_id call_issuer card_not_supported
card_velocity_exceeded currency_not_supported do_not_honor do_not_try_again duplicate_transaction
expired_card fraudulent generic_decline incorrect_address incorrect_cvc incorrect_number
incorrect_pin incorrect_zip insufficient_funds invalid_account invalid_amount invalid_cvc
invalid_expiry_month invalid_expiry_year invalid_number invalid_pin issuer_not_available lost_card
merchant_blacklist new_account_information_available no_action_taken not_permitted
offline_pin_required online_or_offline_pin_required pickup_card pin_try_exceeded processing_error
reenter_transaction restricted_card revocation_of_all_authorizations revocation_of_authorization
security_violation service_not_allowed stolen_card stop_payment_order testmode_decline
transaction_not_allowed try_again_later withdrawal_count_limit_exceeded
mobile_device_authentication_required
"""
)
STRIPE_ERROR_CODES = codes(
    """
card_declined expired_card incorrect_cvc incorrect_number incorrect_zip incorrect_address
invalid_cvc invalid_expiry_month invalid_expiry_year invalid_number insufficient_funds
processing_error authentication_required card_decline_rate_limit_exceeded
payment_intent_authentication_failure payment_intent_payment_attempt_failed
payment_intent_payment_attempt_expired payment_intent_action_required
payment_method_provider_decline payment_method_provider_timeout payment_method_unactivated
invoice_payment_intent_requires_action invoice_no_payment_method_types
india_recurring_payment_mandate_canceled debit_not_authorized bank_account_declined account_closed
rate_limit lock_timeout idempotency_key_in_use api_key_expired resource_missing
testmode_charges_only livemode_mismatch platform_api_key_expired parameter_missing
parameter_invalid_integer
"""
)
STRIPE_ERROR_TYPES = ["api_error", "card_error", "idempotency_error", "invalid_request_error"]
STRIPE_HTTP_STATUSES = [400, 401, 402, 403, 404, 409, 429, 500, 502, 503]
STRIPE_ADVICE_CODES = ["try_again_later", "do_not_try_again", "confirm_card_data"]
STRIPE_OUTCOME_REASONS = [
    "highest_risk_level",
    "elevated_risk_level",
    "rule",
    "low_probability_of_authorization",
    "previously_declined_do_not_retry",
]
ADYEN_REFUSAL_CODES = [str(c) for c in [*range(2, 13), *range(14, 30), *range(31, 47)]]
BRAINTREE_PROCESSOR_CODES = [str(c) for c in [*range(2000, 3001), 4001, 4003, 4004, 4005, 4006, *range(4018, 4025)]]
BRAINTREE_GATEWAY_REJECTIONS = codes(
    """
application_incomplete avs avs_and_cvv cvv duplicate excessive_retry fraud risk_threshold
three_d_secure token_issuance
"""
)
PADDLE_ERROR_CODES = codes(
    """
already_canceled already_refunded authentication_failed blocked_card canceled declined
declined_not_retryable expired_card fraud invalid_amount invalid_payment_details issuer_unavailable
not_enough_balance preferred_network_not_supported prepaid_card_not_supported psp_error
redacted_payment_method system_error transaction_not_permitted unknown
"""
)
MASTERCARD_ADVICE_CODES = [
    "01",
    "02",
    "03",
    "04",
    "21",
    "22",
    *[str(c) for c in range(24, 31)],
    "40",
    "41",
    "43",
]
VISA_CATEGORIES = {
    1: codes("04 07 12 14 15 41 43 46 57 R0 R1 R3"),
    2: codes("03 19 39 52 53 51 59 61 62 65 75 78 86 91 93 96 N3 N4"),
    3: codes("54 55 6P 82 1A N7"),
    4: ["05"],
}
#: Listed in the references but not failures: approvals and pending states.
NOT_FAILURES = {"braintree": {"1000", "1001", "1002", "1003", "1004", "1005", "4000", "4002"}, "adyen": {"0"}}

CASES = [
    *[("stripe", "decline_code", code) for code in STRIPE_DECLINE_CODES],
    *[("stripe", "error_code", code) for code in STRIPE_ERROR_CODES],
    *[("stripe", "error_type", code) for code in STRIPE_ERROR_TYPES],
    *[("stripe", "http_status", str(code)) for code in STRIPE_HTTP_STATUSES],
    *[("stripe", "advice_code", code) for code in STRIPE_ADVICE_CODES],
    *[("stripe", "outcome_reason", code) for code in STRIPE_OUTCOME_REASONS],
    *[
        (provider, "network_advice_code", code)
        for provider in ("stripe", "braintree")
        for code in MASTERCARD_ADVICE_CODES
    ],
    *[("adyen", "decline_code", code) for code in ADYEN_REFUSAL_CODES],
    *[("braintree", "decline_code", code) for code in BRAINTREE_PROCESSOR_CODES],
    *[("braintree", "error_code", code) for code in BRAINTREE_GATEWAY_REJECTIONS],
    *[("paddle", "error_code", code) for code in PADDLE_ERROR_CODES],
]


@pytest.mark.parametrize(("provider", "field", "code"), CASES, ids=["-".join(case) for case in CASES])
def test_every_reference_code_maps_to_a_category_without_the_fallback(provider: str, field: str, code: str) -> None:
    decline = DeclineInfo.model_validate({field: int(code) if field == "http_status" else code})
    result = classify(provider, decline, default_tables())
    assert isinstance(result.category, Category)
    assert not result.unknown, result.explanation
    assert result.matched_on == field
    assert result.reason != "unknown_code"


@pytest.mark.parametrize("code", ADYEN_REFUSAL_CODES)
def test_adyen_refusal_text_maps_like_its_numeric_code(code: str) -> None:
    table = default_tables().table("adyen")
    row = table.find("decline_code", code)
    assert row is not None and len(row.aliases) == 1
    assert table.find("decline_code", row.aliases[0].upper()) == row


@pytest.mark.parametrize(("category", "codes"), VISA_CATEGORIES.items())
def test_every_listed_visa_response_code_has_its_category(category: int, codes: list[str]) -> None:
    networks = default_tables().networks
    assert {code: networks.visa_category(code) for code in codes} == dict.fromkeys(codes, category)


def test_an_unlisted_visa_response_code_is_the_generic_category() -> None:
    assert default_tables().networks.visa_category("N0") == 4


# ---------------------------------------------------------------- cross-check against the reference markdown

# The provider reference the tables encode, kept in the repository (docs/reference/, a copy of the shared one).
REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference"


def needs_reference(test: Any) -> Any:
    return test


def _first_cells(file: str, heading: str) -> list[str]:
    """The first cell of every table row in the section starting at `heading`, without markup."""
    text = (REFERENCE / file).read_text(encoding="utf-8")
    section = text.split(heading, 1)[1].split("\n#", 1)[0]
    cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("|") and "---" not in line]
    return [re.sub(r"[`*]|\(.*\)", "", cell).strip() for cell in cells[1:]]


def _expand(cells: list[str]) -> set[str]:
    codes: set[str] = set()
    for cell in cells:
        for part in cell.split(","):
            bounds = [b.strip() for b in re.split("[–-]", part)]
            if len(bounds) == 2 and all(b.isdigit() for b in bounds):
                codes.update(str(c) for c in range(int(bounds[0]), int(bounds[1]) + 1))
            elif part.strip():
                codes.add(part.strip())
    return codes


@needs_reference
def test_the_stripe_decline_list_matches_the_reference_table() -> None:
    assert _expand(_first_cells("stripe.md", "## 2. Card")) == set(STRIPE_DECLINE_CODES)
    assert _expand(_first_cells("stripe.md", "### Advice codes")) == set(STRIPE_ADVICE_CODES)


@needs_reference
def test_the_stripe_error_code_list_covers_the_reference_enum() -> None:
    text = (REFERENCE / "stripe.md").read_text(encoding="utf-8")
    paragraph = text.split("Codes from the current `code` enum", 1)[1].split("\n", 1)[0]
    listed = set(re.findall(r"`([a-z_]+)`", paragraph)) - {"code"}
    assert listed <= set(STRIPE_ERROR_CODES)


@needs_reference
def test_the_adyen_braintree_paddle_and_mastercard_lists_match_the_reference_tables() -> None:
    assert _expand(_first_cells("adyen.md", "## 1. Refusal")) - NOT_FAILURES["adyen"] == set(ADYEN_REFUSAL_CODES)
    braintree = _expand(_first_cells("braintree.md", "## 2. Processor")) - NOT_FAILURES["braintree"]
    assert braintree <= set(BRAINTREE_PROCESSOR_CODES)
    assert _expand(_first_cells("braintree.md", "## 3. Gateway")) == set(BRAINTREE_GATEWAY_REJECTIONS)
    assert _expand(_first_cells("paddle.md", "## 2. `payments")) == set(PADDLE_ERROR_CODES)
    assert _expand(_first_cells("networks.md", "### 2.1 Merchant")) == set(MASTERCARD_ADVICE_CODES)
