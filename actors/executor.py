"""The retry executor's provider adapter: the real `stripe` SDK (pointed at the simulator in tests).

Every call carries the attempt's deterministic Idempotency-Key. An answer we cannot interpret as charged or
declined (timeout, connection error, 5xx) is `unknown`: it is reconciled by reading the invoice and, if still
open, by re-sending the same key later — never by a fresh charge (invariant I3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import stripe


@dataclass(frozen=True, slots=True)
class ChargeOutcome:
    outcome: str  # succeeded | failed | unknown
    decline: dict[str, Any] = field(default_factory=dict)


class StripeAdapter:
    def __init__(self, api_key: str, api_base: str | None = None, timeout: float = 20.0) -> None:
        kwargs: dict[str, Any] = {"max_network_retries": 0,
                                  "http_client": stripe.RequestsClient(timeout=timeout)}
        if api_base:
            kwargs["base_addresses"] = {"api": api_base}
        self._client = stripe.StripeClient(api_key, **kwargs)

    def pay_invoice(self, invoice_id: str, idempotency_key: str) -> ChargeOutcome:
        """Attempt payment of an open invoice; safe to call again with the same key."""
        try:
            invoice = self._client.v1.invoices.pay(invoice_id, options={"idempotency_key": idempotency_key})
        except stripe.CardError as exc:
            return ChargeOutcome("failed", _decline(exc))
        except (stripe.RateLimitError, stripe.AuthenticationError, stripe.PermissionError) as exc:
            return ChargeOutcome("failed", _decline(exc))
        except stripe.InvalidRequestError as exc:
            return self._settle_invalid(invoice_id, exc)
        except (stripe.APIConnectionError, stripe.APIError) as exc:
            return self.reconcile(invoice_id, str(exc))
        return ChargeOutcome("succeeded" if invoice.status == "paid" else "unknown")

    def final_action(self, action: str, invoice_id: str, subscription_id: str | None, key: str) -> None:
        """The strategy's final action at the provider; raises stripe.StripeError when it did not happen."""
        if action == "cancel_subscription" and subscription_id:
            self._client.v1.subscriptions.cancel(subscription_id, options={"idempotency_key": key})
        elif action == "mark_uncollectible":
            self._client.v1.invoices.mark_uncollectible(invoice_id, options={"idempotency_key": key})

    def reconcile(self, invoice_id: str, why: str = "") -> ChargeOutcome:
        """Read the invoice: paid → succeeded; anything else stays unknown (retry the same key later)."""
        try:
            invoice = self._client.v1.invoices.retrieve(invoice_id)
        except stripe.StripeError as exc:
            return ChargeOutcome("unknown", {"message": f"{why}; reconcile failed: {exc}"[:300]})
        if invoice.status == "paid":
            return ChargeOutcome("succeeded")
        return ChargeOutcome("unknown", {"message": why[:300]})

    def _settle_invalid(self, invoice_id: str, exc: stripe.InvalidRequestError) -> ChargeOutcome:
        settled = self.reconcile(invoice_id, str(exc))
        if settled.outcome == "succeeded":
            return settled  # "invoice is already paid": our earlier attempt or the customer paid it
        return ChargeOutcome("failed", _decline(exc))


def _decline(exc: stripe.StripeError) -> dict[str, Any]:
    error = exc.error
    fields = {
        "error_type": getattr(error, "type", None),
        "error_code": getattr(error, "code", None) or exc.code,
        "decline_code": getattr(error, "decline_code", None),
        "advice_code": getattr(error, "advice_code", None),
        "network_advice_code": getattr(error, "network_advice_code", None),
        "network_decline_code": getattr(error, "network_decline_code", None),
        "http_status": exc.http_status,
        "message": (getattr(error, "message", None) or str(exc))[:300],
    }
    return {k: v for k, v in fields.items() if v is not None}
