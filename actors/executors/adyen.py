"""Adyen retries through the Checkout API `/payments` with the official `Adyen` SDK: the stored payment method
(`shopperInteraction: ContAuth`, `recurringProcessingModel: Subscription`), the attempt key as `Idempotency-Key`
(Adyen replays the first answer for a repeated key), and the key again in `metadata.payrisk_attempt`, which Adyen
echoes in the AUTHORISATION webhook so the webhook settles our attempt instead of opening a new failure."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import Adyen
from Adyen.exceptions import (
    AdyenAPIAuthenticationError,
    AdyenAPIInvalidPermission,
    AdyenAPIValidationError,
    AdyenError,
)

from actors.domain.decisions import ChargeRequest
from actors.executor import ChargeOutcome


class AdyenAdapter:
    @staticmethod
    def is_configured(credentials: Mapping[str, Any]) -> bool:
        return bool(credentials.get("adyen_api_key") and credentials.get("adyen_merchant_account"))

    def __init__(self, credentials: Mapping[str, Any], api_base: str | None = None, timeout: float = 20.0) -> None:
        self._adyen = Adyen.Adyen(xapikey=credentials["adyen_api_key"], platform="test", http_timeout=timeout)
        self._merchant = str(credentials["adyen_merchant_account"])
        if api_base:
            self._adyen.checkout.payments_api.baseUrl = api_base.rstrip("/")

    def charge(self, customer: str, charge: ChargeRequest, intended_at: datetime | None = None) -> ChargeOutcome:
        """One `/payments` call; a repeat with the same key is answered by Adyen from its idempotency store."""
        request = {
            "amount": {"value": charge.amount, "currency": (charge.currency or "").upper()},
            "reference": charge.invoice_id, "merchantAccount": self._merchant, "shopperReference": customer,
            "shopperInteraction": "ContAuth", "recurringProcessingModel": "Subscription",
            "paymentMethod": {"type": "scheme",
                              "storedPaymentMethodId": charge.payment_method_id or charge.stored_payment_method_id},
            "metadata": {"payrisk_attempt": charge.idempotency_key},
        }
        try:
            result = self._adyen.checkout.payments_api.payments(request, idempotency_key=charge.idempotency_key)
        except (AdyenAPIValidationError, AdyenAPIAuthenticationError, AdyenAPIInvalidPermission) as exc:
            return ChargeOutcome("failed", {"http_status": getattr(exc, "status_code", None),
                                            "error_type": type(exc).__name__, "message": str(exc)[:300]})
        except (AdyenError, OSError) as exc:  # 5xx, timeouts, connection errors: the same key again later
            return ChargeOutcome("unknown", {"message": f"{type(exc).__name__}: {exc}"[:300]})
        return outcome_of(result.message if isinstance(result.message, dict) else {})


def outcome_of(answer: Mapping[str, Any]) -> ChargeOutcome:
    code = answer.get("resultCode")
    if code == "Authorised":
        return ChargeOutcome("succeeded")
    if code in ("Refused", "Error", "Cancelled"):
        extra = answer.get("additionalData") or {}
        decline = {"decline_code": answer.get("refusalReasonCode") or answer.get("refusalReason"),
                   "error_type": code, "network_decline_code": extra.get("refusalReasonRaw"),
                   "network_advice_code": extra.get("merchantAdviceCode"), "message": answer.get("refusalReason")}
        return ChargeOutcome("failed", {k: v for k, v in decline.items() if v})
    return ChargeOutcome("unknown", {"message": f"resultCode {code}"})
