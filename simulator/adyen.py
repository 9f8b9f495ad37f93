"""The Adyen dialect of the simulator: Checkout `/v71/payments` for stored-method (ContAuth) payments with Adyen's
Idempotency-Key semantics (a repeated key replays the first answer and charges nothing), and Standard webhooks
(`notificationItems`) signed with the official `Adyen` library's HMAC helper and sent to a gateway.

Every charge (the merchant's own subscription payments through `renew`, and payrisk's retries through `/payments`)
is decided by the shared outcome model and written to the shared ledger (`simulator/dialect.py`: the same
population mix, `ChargeContext` and `Ledger` as the Stripe-compatible simulator); the model's decline codes become
Adyen refusal reasons (`REFUSALS`), its network codes `refusalReasonRaw` / `merchantAdviceCode`. A stored method
may be forced (`force`) as the Stripe simulator's test cards. The fault `error_after_charge` charges, keeps the
answer for the key, and answers 500: the same key later gets the kept answer, as Adyen's idempotency store does."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from Adyen.util import generate_notification_sig
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.dialect import Card, PaymentBook
from simulator.ledger import LedgerEntry
from simulator.outcomes import Outcome

#: the model's decline code → (refusalReasonCode, refusalReason) (reference/adyen.md)
REFUSALS: dict[str, tuple[str, str]] = {
    "insufficient_funds": ("12", "Not enough balance"), "generic_decline": ("2", "Refused"),
    "do_not_honor": ("2", "Refused"), "reenter_transaction": ("2", "Refused"),
    "card_velocity_exceeded": ("28", "Withdrawal amount exceeded"),
    "withdrawal_count_limit_exceeded": ("29", "Withdrawal count exceeded"),
    "try_again_later": ("9", "Issuer Unavailable"), "issuer_not_available": ("9", "Issuer Unavailable"),
    "processing_error": ("4", "Acquirer Error"), "expired_card": ("6", "Expired Card"),
    "incorrect_cvc": ("24", "CVC Declined"), "incorrect_number": ("8", "Invalid Card Number"),
    "invalid_account": ("8", "Invalid Card Number"), "lost_card": ("5", "Blocked Card"),
    "stolen_card": ("5", "Blocked Card"), "pickup_card": ("5", "Blocked Card"),
    "restricted_card": ("25", "Restricted Card"), "transaction_not_allowed": ("23", "Transaction Not Permitted"),
    "revocation_of_authorization": ("26", "Revocation Of Auth"), "stop_payment_order": ("26", "Revocation Of Auth"),
    "revocation_of_all_authorizations": ("26", "Revocation Of Auth"),
    "authentication_required": ("38", "Authentication required"), "fraudulent": ("20", "FRAUD"),
}
BRANDS = {"visa": "visa", "mastercard": "mc", "amex": "amex", "discover": "discover"}


@dataclass
class AdyenDialect:
    api_key: str
    merchant_account: str
    hmac_key: str
    webhook_url: str | None = None
    book: PaymentBook = field(default_factory=PaymentBook)
    outbox: list[bytes] = field(default_factory=list)
    #: fault: charge, keep the answer for the key, answer 500 (the answer is lost on the way)
    error_after_charge: bool = False
    #: PSP references are this plus a sequence number (a run against a long-lived gateway sets its own)
    psp_base: int = 8800000000000000
    _replies: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def ledger(self) -> list[LedgerEntry]:
        return self.book.ledger.entries()

    def shopper(self, shopper: str, stored_method: str, email: str | None = None, **card: Any) -> Card:
        """A shopper with one stored card (`brand`, `funding`, `country`, `utc_offset_hours`, `forced`)."""
        return self.book.add_card(stored_method, shopper, email=email, **card)

    def force(self, stored_method: str, outcome: str | None) -> None:
        """Later payments with this stored method: the decline `outcome` (the model's code), `succeed`, or (None)
        the outcome model."""
        self.book.force(stored_method, outcome)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v71/payments", self._payments, methods=["POST"])])

    async def _payments(self, request: Request) -> Response:
        if request.headers.get("x-api-key") != self.api_key:
            return JSONResponse({"status": 401, "errorCode": "000", "message": "HTTP Status Response - Unauthorized",
                                 "errorType": "security"}, status_code=401)
        key, body = request.headers.get("idempotency-key"), orjson.loads(await request.body())
        with self._lock:
            if key and key in self._replies:
                status, reply = self._replies[key]
                return Response(reply, status_code=status, media_type="application/json")
            method = ((body.get("paymentMethod") or {}).get("storedPaymentMethodId")) or ""
            if method not in self.book.cards or self.book.cards[method].customer != body.get("shopperReference"):
                return JSONResponse({"status": 422, "errorCode": "800", "message": "Contract not found",
                                     "errorType": "validation"}, status_code=422)
            reply = orjson.dumps(self.pay(body["reference"], method, body["amount"], source="api", key=key,
                                          metadata=body.get("metadata") or {}))
            if key:
                self._replies[key] = (200, reply)
            if self.error_after_charge:
                return Response(b'{"status":500,"errorCode":"905","message":"Payment details are not supported",'
                                b'"errorType":"internal"}', status_code=500, media_type="application/json")
        return Response(reply, media_type="application/json")

    def renew(self, reference: str, stored_method: str, amount: dict[str, Any]) -> dict[str, Any]:
        """The merchant's own subscription payment (the first attempt of `reference`), with its webhook."""
        return self.pay(reference, stored_method, amount, source="automatic", key=None, metadata={})

    def pay(self, reference: str, stored_method: str, amount: dict[str, Any], *, source: str, key: str | None,
            metadata: dict[str, Any]) -> dict[str, Any]:
        """One ContAuth payment decided by the outcome model; the ledger, the AUTHORISATION webhook, the answer."""
        with self._lock:
            psp = str(self.psp_base + next(self._ids))
            card = self.book.cards[stored_method]
            outcome = self.book.attempt(reference, stored_method, int(amount["value"]), str(amount["currency"]),
                                        source=source, charge_id=psp, idempotency_key=key)
            extra = {"shopperReference": card.customer, "recurring.recurringDetailReference": stored_method,
                     "recurringProcessingModel": "Subscription", "paymentAccountReference": card.fingerprint,
                     **({"shopperEmail": card.email} if card.email else {}),
                     **{f"metadata.{k}": str(v) for k, v in metadata.items()}}
            if outcome.succeeded:
                self.notify(psp, reference, amount, True, "", extra, brand=card.brand)
                return {"pspReference": psp, "resultCode": "Authorised", "merchantReference": reference}
            code, reason, refusal = _refusal(outcome)
            extra.update(refusal)
            self.notify(psp, reference, amount, False, reason, extra, brand=card.brand)
            return {"pspReference": psp, "resultCode": "Refused", "refusalReason": reason, "refusalReasonCode": code,
                    "merchantReference": reference, "additionalData": refusal}

    def notify(self, psp: str, reference: str, amount: dict[str, Any], success: bool, reason: str,
               extra: dict[str, str], event_code: str = "AUTHORISATION", at: datetime | None = None,
               brand: str = "visa") -> None:
        """Queue one signed Standard notification (sent by `deliver`)."""
        item: dict[str, Any] = {"pspReference": psp, "merchantAccountCode": self.merchant_account,
                                "merchantReference": reference, "amount": amount, "eventCode": event_code,
                                "success": "true" if success else "false", "paymentMethod": BRANDS.get(brand, brand),
                                "eventDate": (at or self.book.now()).astimezone(UTC).isoformat(timespec="seconds"),
                                "reason": reason}
        signature = generate_notification_sig(item, self.hmac_key).decode()
        item["additionalData"] = {**extra, "hmacSignature": signature}
        with self._lock:
            self.outbox.append(orjson.dumps({"live": "false",
                                             "notificationItems": [{"NotificationRequestItem": item}]}))

    def deliver(self) -> list[int]:
        """POST every queued notification to the gateway; Adyen expects `[accepted]`."""
        with self._lock:
            sent, self.outbox = self.outbox, []
        statuses = []
        for body in sent:
            answer = httpx.post(str(self.webhook_url), content=body, headers={"content-type": "application/json"},
                                timeout=10)
            statuses.append(answer.status_code)
            if answer.status_code != 200 or answer.text != "[accepted]":
                self.outbox.append(body)  # as Adyen does: retried until accepted
        return statuses

    def double_charges(self) -> dict[str, int]:
        return self.book.double_charges()


def _refusal(outcome: Outcome) -> tuple[str, str, dict[str, str]]:
    """(refusalReasonCode, refusalReason, the additionalData Adyen adds) of a declined outcome."""
    code, reason = REFUSALS.get(outcome.decline_code or "", ("2", "Refused"))
    extra = {"refusalReasonCode": code}
    if outcome.network_decline_code:
        extra["refusalReasonRaw"] = f"{outcome.network_decline_code} : {outcome.message or reason}"
    if outcome.network_advice_code:
        extra["merchantAdviceCode"] = outcome.network_advice_code
    return code, reason, extra
