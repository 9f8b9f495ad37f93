"""A compact built-in Stripe classification, used only when the full table package is not installed.

It follows the precedence of the full classifier (do-not-retry advice > decline code > error code > HTTP
status) with the principal codes of reference/stripe.md; anything else falls back to a capped soft decline.
"""

from __future__ import annotations

from typing import Any

_HARD = {"lost_card", "stolen_card", "pickup_card", "restricted_card", "fraudulent", "merchant_blacklist",
         "revocation_of_all_authorizations", "revocation_of_authorization", "stop_payment_order",
         "do_not_try_again", "testmode_decline", "security_violation", "expired_card", "incorrect_number",
         "invalid_number", "invalid_account", "card_not_supported", "currency_not_supported",
         "transaction_not_allowed", "not_permitted", "service_not_allowed", "new_account_information_available"}
_AUTH = {"authentication_required", "authentication_not_handled", "payment_intent_authentication_failure"}
_FRAUD_REASONS = {"highest_risk_level", "elevated_risk_level", "rule"}
_NETWORK = {"processing_error", "issuer_not_available", "reenter_transaction", "api_error"}
_CONFIG = {"invalid_api_key", "api_key_expired", "platform_api_key_expired", "testmode_charges_only",
           "livemode_mismatch", "invoice_no_payment_method_types", "resource_missing"}


def classify_basic(provider: str, decline: dict[str, Any]) -> dict[str, Any]:
    code = decline.get("decline_code") or decline.get("error_code")
    category, reason = _category(decline, code)
    retryable = category in ("SOFT_DECLINE", "RATE_LIMITED", "NETWORK_ERROR")
    unknown = category == "SOFT_DECLINE" and code not in (None, "insufficient_funds", "card_velocity_exceeded",
                                                          "withdrawal_count_limit_exceeded", "generic_decline",
                                                          "do_not_honor", "try_again_later", "card_declined")
    return {"category": category, "reason": reason, "retryable": retryable, "unknown": unknown,
            "min_delay_seconds": 3600 if category == "RATE_LIMITED" else 0,
            "max_attempts_cap": 2 if unknown else None, "table_id": f"{provider}-basic", "table_version": 1,
            "raw_codes": {k: str(v) for k, v in decline.items() if v is not None and k != "message"},
            "explanation": f"{category}: {reason} (built-in table)"}


def _category(decline: dict[str, Any], code: str | None) -> tuple[str, str]:
    if decline.get("outcome_reason") in _FRAUD_REASONS or code == "fraudulent":
        return "FRAUD_FLAGGED", str(decline.get("outcome_reason") or code)
    if decline.get("advice_code") == "do_not_try_again" or decline.get("network_advice_code") in ("03", "21") \
            or decline.get("outcome_reason") == "previously_declined_do_not_retry":
        return "HARD_DECLINE", str(code or "do_not_try_again")
    if code in _AUTH:
        return "AUTHENTICATION_REQUIRED", code or "authentication_required"
    if code in _HARD:
        return "HARD_DECLINE", "lost_or_stolen" if code in ("lost_card", "stolen_card", "pickup_card") else code or ""
    if code in _CONFIG or decline.get("http_status") in (401, 403):
        return "CONFIG_ERROR", code or "authentication_error"
    if decline.get("http_status") == 429 or code in ("rate_limit", "lock_timeout", "card_decline_rate_limit_exceeded"):
        return "RATE_LIMITED", code or "rate_limit"
    if code in _NETWORK or (decline.get("http_status") or 0) >= 500:
        return "NETWORK_ERROR", code or "api_error"
    return "SOFT_DECLINE", code or "unknown"
