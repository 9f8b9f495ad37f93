"""The retry executor's provider adapter: the real `stripe` SDK (pointed at the simulator in tests).

Every call carries the attempt's deterministic Idempotency-Key. An answer we cannot interpret as charged or
declined (timeout, connection error, 5xx) is `unknown`: it is reconciled by reading the invoice and, if still
open, by re-sending the same key later — never by a fresh charge (invariant I3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import stripe

from gateway.providers.stripe.declines import charge_decline, error_decline


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

    def pay_invoice(self, invoice_id: str, idempotency_key: str, payment_method: str | None = None) -> ChargeOutcome:
        """Attempt payment of an open invoice; safe to call again with the same key (and the same instrument).

        `payment_method`: the instrument the customer just gave (a `pm_…`, or a `card_…` / `src_…` of the sources
        API); None lets the provider pick in its own order (subscription default, then customer default).
        """
        params: dict[str, Any] = {}
        if payment_method:
            params["source" if payment_method.startswith(("card_", "src_", "ba_")) else "payment_method"] = (
                payment_method)
        try:
            invoice = self._client.v1.invoices.pay(invoice_id, params=params or None,
                                                   options={"idempotency_key": idempotency_key})
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


class StripeReader:
    """Reads what a failure's deliveries lacked: the decline codes (PaymentIntent `last_payment_error` and its
    latest charge's `outcome`; for current API versions, found through the invoice's InvoicePayments) and the
    customer's tenure. Every read has a short timeout and no SDK retries: the caller reads at most once per
    failure and falls back to the webhooks and the classification timer."""

    def __init__(self, api_key: str, api_base: str | None = None, timeout: float = 5.0) -> None:
        kwargs: dict[str, Any] = {"max_network_retries": 0, "http_client": stripe.RequestsClient(timeout=timeout)}
        if api_base:
            kwargs["base_addresses"] = {"api": api_base}
        self._client = stripe.StripeClient(api_key, **kwargs)

    def details(self, customer_id: str, fetch: dict[str, Any]) -> dict[str, Any]:
        """`fetch` is a DetailsFetch as a dict; the answer is what `decide_details_fetched` takes."""
        result: dict[str, Any] = {"failure_no": fetch["failure_no"], "decline": None, "found_in": [], "error": None,
                                  "customer": bool(fetch.get("customer")), "customer_since": None,
                                  "payment_intent_id": fetch.get("payment_intent_id"),
                                  "charge_id": fetch.get("charge_id")}
        try:
            if fetch.get("codes"):
                self._codes(fetch["invoice_id"], result)
            if fetch.get("customer"):
                result["customer_since"] = self._since(customer_id, fetch.get("subscription_id"), result)
        except stripe.StripeError as exc:
            result["error"] = f"{type(exc).__name__}: {exc.user_message or exc.code or 'no message'}"[:300]
        return result

    def _codes(self, invoice_id: str, result: dict[str, Any]) -> None:
        pi_id, charge_id = result["payment_intent_id"], result["charge_id"]
        if not pi_id and not charge_id:  # current versions: the invoice names its payments only through the API
            listed = self._client.v1.invoice_payments.list(params={"invoice": invoice_id, "limit": 10}).to_dict()
            result["found_in"].append(f"invoice_payments of {invoice_id}")
            newest = max(listed.get("data") or [], key=lambda p: (p.get("created") or 0, p.get("is_default") is True),
                         default=None)
            payment = (newest or {}).get("payment") or {}
            pi_id, charge_id = _id(payment.get("payment_intent")), _id(payment.get("charge"))
            result.update(payment_intent_id=pi_id, charge_id=charge_id)
        fields: dict[str, Any] = {}
        if pi_id:
            intent = self._client.v1.payment_intents.retrieve(pi_id, params={"expand": ["latest_charge"]}).to_dict()
            result["found_in"].append(f"payment_intent {pi_id}")
            latest = intent.get("latest_charge")
            if isinstance(latest, dict):  # the charge first: the error object's codes are the more precise
                fields.update(charge_decline(latest).model_dump(exclude_none=True))
                result["charge_id"] = result["charge_id"] or latest.get("id")
            if isinstance(intent.get("last_payment_error"), dict):
                fields.update(error_decline(intent["last_payment_error"]).model_dump(exclude_none=True))
        elif charge_id:
            charge = self._client.v1.charges.retrieve(charge_id).to_dict()
            result["found_in"].append(f"charge {charge_id}")
            fields.update(charge_decline(charge).model_dump(exclude_none=True))
        result["decline"] = fields or None

    def _since(self, customer_id: str, subscription_id: str | None, result: dict[str, Any]) -> str | None:
        starts = []
        customer = self._client.v1.customers.retrieve(customer_id).to_dict()
        result["found_in"].append(f"customer {customer_id}")
        starts.append(customer.get("created"))
        if subscription_id:
            subscription = self._client.v1.subscriptions.retrieve(subscription_id).to_dict()
            result["found_in"].append(f"subscription {subscription_id}")
            starts += [subscription.get("start_date"), subscription.get("created")]
        known = [s for s in starts if isinstance(s, int)]
        return datetime.fromtimestamp(min(known), UTC).isoformat() if known else None


def _id(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    return value.get("id") if isinstance(value, dict) else None
