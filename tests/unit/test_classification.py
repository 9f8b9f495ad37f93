"""The pure classifier: the traps, precedence of signals over codes, the unknown-code path, network rules."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from actors.domain.classification import (
    Category,
    Classification,
    CustomerAction,
    UnknownProviderError,
    classify,
    default_tables,
    is_retryable,
)
from actors.domain.inbound import DeclineInfo


def stripe(**codes: Any) -> Classification:
    return classify("stripe", DeclineInfo(**codes), default_tables())


# ----------------------------------------------------------------------------------------------------- traps


def test_generic_decline_alone_is_a_limited_soft_decline_and_asks_the_customer_to_call_the_issuer() -> None:
    result = stripe(error_type="card_error", error_code="card_declined", decline_code="generic_decline")
    assert (result.category, result.retryable, result.max_attempts_cap) == (Category.SOFT_DECLINE, True, 4)
    assert result.customer_action == CustomerAction.CONTACT_ISSUER
    assert result.matched_on == "decline_code"


def test_generic_decline_blocked_for_excessive_visa_retries_is_never_retried() -> None:
    # The shape Stripe support documents for a Visa card blocked after 15+ retries in 30 days.
    result = stripe(
        error_type="card_error",
        error_code="card_declined",
        decline_code="generic_decline",
        outcome_type="blocked",
        outcome_reason="previously_declined_do_not_retry",
        network_status="not_sent_to_network",
        card_brand="visa",
    )
    assert result.category == Category.HARD_DECLINE and not result.retryable
    assert result.matched_on == "outcome_reason"
    assert "outranks decline_code generic_decline" in result.explanation


def test_do_not_honor_is_a_soft_decline_in_visa_category_four_not_a_hard_stop() -> None:
    result = stripe(decline_code="do_not_honor")
    assert result.category == Category.SOFT_DECLINE and result.retryable
    assert result.reason == "do_not_honor"
    assert result.network_rule.visa_category == 4


def test_insufficient_funds_alone_is_retryable_without_customer_action() -> None:
    result = stripe(decline_code="insufficient_funds")
    assert (result.category, result.retryable, result.customer_action) == (
        Category.SOFT_DECLINE,
        True,
        CustomerAction.NONE,
    )
    assert result.reason == "insufficient_funds"


def test_insufficient_funds_with_mastercard_advice_21_is_a_hard_decline_never_retried() -> None:
    result = stripe(decline_code="insufficient_funds", network_advice_code="21", card_brand="mastercard")
    assert result.category == Category.HARD_DECLINE and not result.retryable
    assert result.matched_on == "network_advice_code"
    assert result.network_rule.mastercard_advice == "21"
    assert result.network_rule.visa_category is None
    assert "insufficient_funds" in result.explanation


def test_mastercard_advice_03_stops_even_a_soft_decline() -> None:
    result = stripe(decline_code="do_not_honor", network_advice_code="03")
    assert result.category == Category.HARD_DECLINE and result.reason == "do_not_try_again"


def test_stripe_highest_risk_level_is_fraud_flagged_even_when_the_decline_code_is_generic() -> None:
    result = stripe(
        error_code="card_declined",
        decline_code="generic_decline",
        outcome_type="blocked",
        outcome_reason="highest_risk_level",
    )
    assert result.category == Category.FRAUD_FLAGGED and not result.retryable
    assert result.matched_on == "outcome_reason"


def test_a_radar_block_without_a_decline_code_is_fraud_flagged() -> None:
    result = stripe(error_type="card_error", error_code="card_declined", outcome_type="blocked", outcome_reason="rule")
    assert result.category == Category.FRAUD_FLAGGED


def test_429_without_a_decline_code_is_rate_limited() -> None:
    result = stripe(http_status=429)
    assert result.category == Category.RATE_LIMITED and result.retryable


def test_429_with_a_legacy_invalid_request_type_is_still_rate_limited() -> None:
    assert stripe(http_status=429, error_type="invalid_request_error").category == Category.RATE_LIMITED


def test_a_legacy_rate_limit_code_on_a_400_is_rate_limited() -> None:
    assert stripe(http_status=400, error_code="rate_limit").category == Category.RATE_LIMITED


def test_429_with_a_decline_code_follows_the_decline_code() -> None:
    result = stripe(http_status=429, decline_code="lost_card")
    assert result.category == Category.HARD_DECLINE and result.reason == "lost_or_stolen"
    assert "outranks http_status 429: RATE_LIMITED" in result.explanation


def test_429_with_insufficient_funds_is_a_soft_decline_not_a_backoff() -> None:
    assert stripe(http_status=429, decline_code="insufficient_funds").category == Category.SOFT_DECLINE


@pytest.mark.parametrize(
    "codes",
    [
        {"http_status": 401},
        {
            "http_status": 401,
            "error_type": "invalid_request_error",
            "message": "Invalid API Key provided: sk_live_***",
        },
        {"error_type": "authentication_error"},
        {"http_status": 401, "error_code": "api_key_expired"},
    ],
)
def test_an_invalid_or_expired_api_key_is_a_config_error(codes: dict[str, Any]) -> None:
    result = stripe(**codes)
    assert result.category == Category.CONFIG_ERROR and not result.retryable


# ------------------------------------------------------------------------------------------------ precedence


def test_advice_do_not_try_again_outranks_a_retryable_decline_code() -> None:
    result = stripe(decline_code="insufficient_funds", advice_code="do_not_try_again")
    assert result.category == Category.HARD_DECLINE and result.matched_on == "advice_code"
    assert result.customer_action == CustomerAction.UPDATE_PAYMENT_METHOD


def test_advice_to_try_again_never_overrides_a_hard_decline_code() -> None:
    result = stripe(decline_code="expired_card", advice_code="try_again_later")
    assert result.category == Category.HARD_DECLINE and result.matched_on == "decline_code"


def test_advice_alone_decides_when_no_code_was_given() -> None:
    result = stripe(advice_code="try_again_later")
    assert result.category == Category.SOFT_DECLINE and result.matched_on == "advice_code"


def test_a_decline_code_outranks_the_error_code() -> None:
    result = stripe(error_code="card_declined", decline_code="stolen_card")
    assert result.category == Category.HARD_DECLINE and result.matched_on == "decline_code"


def test_an_error_code_outranks_the_error_type() -> None:
    assert stripe(error_type="card_error", error_code="expired_card").matched_on == "error_code"


def test_a_stripe_outcome_reason_repeating_the_decline_code_decides_like_it() -> None:
    result = stripe(error_type="card_error", error_code="card_declined", outcome_reason="expired_card")
    assert result.category == Category.HARD_DECLINE and result.matched_on == "outcome_reason"


def test_a_5xx_without_a_row_of_its_own_falls_to_its_class() -> None:
    result = stripe(http_status=503)
    assert result.category == Category.NETWORK_ERROR and result.matched_on == "http_status"


def test_a_fraud_block_outranks_a_do_not_try_again_advice() -> None:
    result = stripe(outcome_reason="highest_risk_level", advice_code="do_not_try_again")
    assert result.category == Category.FRAUD_FLAGGED


# --------------------------------------------------------------------------------------------- unknown codes


def test_an_unknown_decline_code_alone_is_a_soft_decline_capped_at_two_attempts() -> None:
    result = stripe(decline_code="brand_new_code")
    assert (result.category, result.retryable, result.max_attempts_cap) == (Category.SOFT_DECLINE, True, 2)
    assert result.unknown and result.unknown_code == "decline_code=brand_new_code"
    assert result.matched_on == "fallback"


def test_an_unknown_decline_code_falls_back_on_the_error_code_but_keeps_the_small_cap() -> None:
    result = stripe(error_type="card_error", error_code="card_declined", decline_code="brand_new_code")
    assert result.matched_on == "error_code" and result.unknown
    assert result.max_attempts_cap == 2  # card_declined alone allows 4
    assert result.explanation.startswith("unknown decline_code brand_new_code")


def test_an_unknown_error_code_falls_back_on_a_non_retryable_error_type_without_a_cap() -> None:
    result = stripe(error_type="invalid_request_error", error_code="new_parameter_problem")
    assert result.category == Category.CONFIG_ERROR and result.unknown
    assert result.max_attempts_cap is None


def test_no_codes_at_all_is_the_fallback_soft_decline() -> None:
    result = stripe()
    assert result.unknown and result.unknown_code is None and result.matched_on == "fallback"
    assert result.category == Category.SOFT_DECLINE and result.max_attempts_cap == 2


def test_an_unlisted_http_status_alone_is_an_unknown_code() -> None:
    result = stripe(http_status=418)
    assert result.unknown and result.unknown_code == "http_status=418"


def test_an_unlisted_http_status_next_to_a_known_code_is_not_news() -> None:
    result = classify("adyen", DeclineInfo(http_status=200, error_type="Refused"), default_tables())
    assert not result.unknown and result.matched_on == "error_type"


def test_an_unknown_mastercard_advice_next_to_a_known_decline_code_is_named_but_not_a_fallback() -> None:
    result = stripe(decline_code="insufficient_funds", network_advice_code="99")
    assert not result.unknown
    assert result.network_rule.mastercard_advice == "99"
    assert "not in the table" in result.network_rule.summary


def test_a_stop_signal_decides_even_when_the_decline_code_is_unknown() -> None:
    result = stripe(decline_code="brand_new_code", advice_code="do_not_try_again")
    assert result.category == Category.HARD_DECLINE and not result.unknown


def test_a_provider_without_a_table_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(UnknownProviderError, match="'mollie'.*adyen, braintree, generic, paddle, stripe"):
        classify("mollie", DeclineInfo(decline_code="x"), default_tables())


# --------------------------------------------------------------------------------------------- network rules


def test_a_raw_visa_response_code_sets_the_visa_category_on_a_visa_card() -> None:
    result = stripe(decline_code="do_not_honor", network_decline_code="51", card_brand="visa")
    assert result.network_rule.visa_category == 2
    assert result.network_rule.summary == "Visa category 2 (issuer cannot approve at this time)"


def test_the_row_hint_gives_the_visa_category_when_the_brand_is_unknown() -> None:
    assert stripe(decline_code="lost_card").network_rule.visa_category == 1


def test_a_mastercard_decline_carries_no_visa_category() -> None:
    result = stripe(decline_code="lost_card", card_brand="mastercard", network_decline_code="41")
    assert result.network_rule.visa_category is None and result.network_rule.is_none


def test_mastercard_advice_24_sets_a_one_hour_minimum_delay_on_a_soft_decline() -> None:
    result = stripe(decline_code="insufficient_funds", network_advice_code="24")
    assert result.category == Category.SOFT_DECLINE and result.min_delay_seconds == 3600


def test_a_row_delay_and_an_advice_delay_combine_to_the_longer_one() -> None:
    result = stripe(decline_code="card_velocity_exceeded", network_advice_code="24")
    assert result.min_delay_seconds == 86400


# ------------------------------------------------------------------------------------------- other providers


def test_adyen_refusal_text_is_understood_like_its_code() -> None:
    result = classify("adyen", DeclineInfo(decline_code="Not enough balance"), default_tables())
    assert result.reason == "insufficient_funds" and result.category == Category.SOFT_DECLINE


def test_adyen_merchant_advice_in_adyen_format_stops_the_series() -> None:
    decline = DeclineInfo(decline_code="12", network_advice_code="03 : Do not try again", card_brand="mc")
    result = classify("adyen", decline, default_tables())
    assert result.category == Category.HARD_DECLINE and result.network_rule.mastercard_advice == "03"


def test_adyen_block_against_excessive_retry_fees_is_never_retried() -> None:
    assert classify("adyen", DeclineInfo(decline_code="46"), default_tables()).category == Category.HARD_DECLINE


def test_a_braintree_code_inside_the_generic_range_is_a_limited_soft_decline() -> None:
    result = classify("braintree", DeclineInfo(decline_code="2500"), default_tables())
    assert result.category == Category.SOFT_DECLINE and result.reason == "generic_decline" and not result.unknown


def test_a_braintree_exact_code_wins_over_the_range_around_it() -> None:
    tables = default_tables()
    assert classify("braintree", DeclineInfo(decline_code="2070"), tables).category == Category.HARD_DECLINE
    assert classify("braintree", DeclineInfo(decline_code="2078"), tables).category == Category.SOFT_DECLINE


def test_a_braintree_code_outside_every_row_and_range_is_unknown() -> None:
    assert classify("braintree", DeclineInfo(decline_code="5555"), default_tables()).unknown


def test_paddle_declined_not_retryable_is_a_hard_decline() -> None:
    result = classify("paddle", DeclineInfo(error_code="declined_not_retryable"), default_tables())
    assert result.category == Category.HARD_DECLINE


# ----------------------------------------------------------------------------------------------- the verdict


def test_the_classification_records_the_table_raw_codes_and_retryability_of_its_category() -> None:
    result = stripe(decline_code="expired_card", http_status=402, message="Your card has expired.", card_brand="visa")
    assert (result.table_id, result.table_version, result.network_table_version) == ("stripe", 1, 1)
    assert result.raw_codes == {"decline_code": "expired_card", "http_status": "402", "card_brand": "visa"}
    assert result.retryable == is_retryable(result.category)


def test_the_classification_survives_a_json_round_trip_and_is_frozen() -> None:
    result = stripe(decline_code="insufficient_funds", network_advice_code="25")
    again = Classification.model_validate_json(result.model_dump_json())
    assert again == result
    with pytest.raises(ValidationError):
        result.category = Category.HARD_DECLINE


def test_every_explanation_is_one_line() -> None:
    for codes in (
        {},
        {"decline_code": "lost_card", "http_status": 429},
        {"decline_code": "x", "error_code": "y"},
    ):
        assert "\n" not in stripe(**codes).explanation
