"""Build Stripe-shaped webhook events and signatures (the documented scheme) for tests."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import orjson

SECRET = "whsec_test_secret_for_payrisk"


def sign(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def envelope(event_id: str, event_type: str, obj: dict[str, Any], *, created: int = 1_772_442_000,
             idempotency_key: str | None = None, previous: dict[str, Any] | None = None) -> bytes:
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return orjson.dumps({"id": event_id, "object": "event", "type": event_type, "created": created,
                         "api_version": "2026-06-24.dahlia", "livemode": False, "pending_webhooks": 1,
                         "request": {"id": None, "idempotency_key": idempotency_key}, "data": data})


def invoice(invoice_id: str, customer: str, *, basil: bool = True, amount: int = 2500,
            pi: str | None = "pi_1", charge: str | None = "ch_1", status: str = "open") -> dict[str, Any]:
    inv: dict[str, Any] = {"id": invoice_id, "object": "invoice", "customer": customer, "amount_due": amount,
                           "amount_paid": amount if status == "paid" else 0, "currency": "usd",
                           "attempt_count": 1, "next_payment_attempt": None, "status": status,
                           "billing_reason": "subscription_cycle", "customer_email": "ada@example.com",
                           "hosted_invoice_url": f"https://invoice.example/{invoice_id}"}
    if basil:
        inv["parent"] = {"subscription_details": {"subscription": "sub_1"}}
        inv["payments"] = {"data": [{"payment": {"type": "payment_intent", "payment_intent": pi}}]}
    else:
        inv.update({"subscription": "sub_1", "payment_intent": pi, "charge": charge, "paid": status == "paid"})
    return inv


def charge_failed(charge_id: str, customer: str, *, pi: str = "pi_1", code: str = "insufficient_funds",
                  advice: str | None = None, network_advice: str | None = None) -> dict[str, Any]:
    return {"id": charge_id, "object": "charge", "customer": customer, "payment_intent": pi, "amount": 2500,
            "currency": "usd", "failure_code": "card_declined", "failure_message": "Your card was declined.",
            "outcome": {"type": "issuer_declined", "reason": code, "network_status": "declined_by_network",
                        "advice_code": advice, "network_advice_code": network_advice},
            "payment_method_details": {"card": {"brand": "visa", "fingerprint": f"fp_{customer}",
                                                "country": "US"}}}


def pi_failed(pi_id: str, customer: str, *, code: str = "insufficient_funds", charge: str = "ch_1") -> dict[str, Any]:
    return {"id": pi_id, "object": "payment_intent", "customer": customer, "amount": 2500, "currency": "usd",
            "latest_charge": charge, "last_payment_error": {"type": "card_error", "code": "card_declined",
                                                            "decline_code": code, "charge": charge}}
