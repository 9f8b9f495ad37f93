"""Braintree retries with the official `braintree` SDK: `Subscription.retry_charge` (the subscription's past-due
balance, submitted for settlement). Braintree has no idempotency keys, so before any new charge the adapter reads
the subscription: a transaction created since the attempt's intent *is* this attempt's answer (a crash or a lost
answer after the call), and a subscription no longer past due was paid already — one charge per attempt."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import braintree

from actors.domain.decisions import ChargeRequest
from actors.executor import ChargeOutcome

_PAID = {"authorized", "submitted_for_settlement", "settling", "settled", "settlement_pending"}
#: clocks of payrisk and Braintree differ a little: a transaction this much older than the intent still counts
SKEW = timedelta(seconds=5)


class BraintreeAdapter:
    @staticmethod
    def is_configured(credentials: Mapping[str, Any]) -> bool:
        return all(credentials.get(k) for k in ("braintree_merchant_id", "braintree_public_key",
                                                 "braintree_private_key"))

    def __init__(self, credentials: Mapping[str, Any], api_base: str | None = None, timeout: float = 20.0) -> None:
        environment = _environment(api_base, credentials.get("braintree_environment"))
        self._gateway = braintree.BraintreeGateway(braintree.Configuration(
            environment, merchant_id=credentials["braintree_merchant_id"],
            public_key=credentials["braintree_public_key"], private_key=credentials["braintree_private_key"],
            timeout=timeout))

    def charge(self, customer: str, charge: ChargeRequest, intended_at: datetime | None = None) -> ChargeOutcome:
        if not charge.subscription_id:
            return ChargeOutcome("failed", {"error_type": "gateway_rejected", "error_code": "no_subscription",
                                            "message": "payrisk retries Braintree subscriptions only"})
        try:
            earlier = self._since(charge.subscription_id, intended_at)
            if earlier is not None:
                return earlier
            result = self._gateway.subscription.retry_charge(charge.subscription_id,
                                                             f"{charge.amount / 100:.2f}", True)
        except braintree.exceptions.braintree_error.BraintreeError as exc:
            return ChargeOutcome("unknown", {"message": f"{type(exc).__name__}: {exc}"[:300]})
        except OSError as exc:
            return ChargeOutcome("unknown", {"message": f"{type(exc).__name__}: {exc}"[:300]})
        txn = getattr(result, "transaction", None)
        if txn is None:
            return ChargeOutcome("failed", {"error_type": "validation_error", "message": str(result.message)[:300]})
        return transaction_outcome(txn)

    def _since(self, subscription_id: str, intended_at: datetime | None) -> ChargeOutcome | None:
        """The answer already given for this attempt, if the provider holds one (the lookup before any charge)."""
        subscription = self._gateway.subscription.find(subscription_id)
        if str(subscription.status) == "Active" and float(subscription.balance or 0) == 0:
            return ChargeOutcome("succeeded")
        if intended_at is None:
            return None
        since = intended_at - SKEW
        newer = [t for t in subscription.transactions or [] if _aware(t.created_at) >= since]
        return transaction_outcome(max(newer, key=lambda t: _aware(t.created_at))) if newer else None


def transaction_outcome(txn: Any) -> ChargeOutcome:
    if str(txn.status) in _PAID:
        return ChargeOutcome("succeeded")
    decline = {"decline_code": txn.processor_response_code, "error_type": getattr(txn, "processor_response_type",
               None) or txn.status, "error_code": getattr(txn, "gateway_rejection_reason", None),
               "network_decline_code": getattr(txn, "network_response_code", None),
               "network_advice_code": getattr(txn, "merchant_advice_code", None),
               "message": txn.processor_response_text}
    return ChargeOutcome("failed", {k: str(v) for k, v in decline.items() if v})


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _environment(api_base: str | None, name: Any) -> braintree.Environment:
    if api_base:
        parts = urlsplit(api_base)
        port = str(parts.port or (443 if parts.scheme == "https" else 80))
        return braintree.Environment("payrisk", parts.hostname or "127.0.0.1", port, api_base, parts.scheme == "https",
                                     None)
    return braintree.Environment.Production if name == "production" else braintree.Environment.Sandbox
