"""The Adyen dialect of the simulator: Checkout `/v71/payments` for stored-method (ContAuth) payments with Adyen's
Idempotency-Key semantics (a repeated key replays the first answer and charges nothing), a ledger of every charge
attempt, and Standard webhooks (`notificationItems`) signed with the official `Adyen` library's HMAC helper and
sent to a gateway. Outcomes are set per stored payment method (`force`): a refusal reason code, or success."""

from __future__ import annotations

import threading
from collections import Counter
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

#: refusalReasonCode → (refusalReason, refusalReasonRaw) for the codes the dialect can be told to return
REFUSALS = {"2": ("Refused", "05 : Do not honour"), "5": ("Blocked Card", "04 : Pick up card"),
            "6": ("Expired Card", "54 : Expired card"), "12": ("Not enough balance", "51 : Insufficient funds"),
            "20": ("FRAUD", ""), "46": ("Transaction blocked by Adyen to prevent excessive retry fees", "")}


@dataclass
class AdyenDialect:
    api_key: str
    merchant_account: str
    hmac_key: str
    webhook_url: str | None = None
    ledger: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[bytes] = field(default_factory=list)
    outcomes: dict[str, str | None] = field(default_factory=dict)
    _replies: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seq: int = 0

    def force(self, stored_method: str, refusal_code: str | None) -> None:
        """The next payments with this stored method return `refusal_code` (None: Authorised)."""
        self.outcomes[stored_method] = refusal_code

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
            answer = self._charge(body, key)
            reply = orjson.dumps(answer)
            if key:
                self._replies[key] = (200, reply)
        return Response(reply, media_type="application/json")

    def _charge(self, body: dict[str, Any], key: str | None) -> dict[str, Any]:
        self._seq += 1
        psp = f"{8800000000000000 + self._seq}"
        method = body["paymentMethod"]["storedPaymentMethodId"]
        code = self.outcomes.get(method)
        self.ledger.append({"psp": psp, "reference": body["reference"], "shopper": body.get("shopperReference"),
                            "amount": body["amount"]["value"], "idempotency_key": key,
                            "outcome": "Authorised" if code is None else "Refused"})
        extra = {"shopperReference": body.get("shopperReference", ""), "recurring.recurringDetailReference": method,
                 "recurringProcessingModel": body.get("recurringProcessingModel", ""),
                 **{f"metadata.{k}": v for k, v in (body.get("metadata") or {}).items()}}
        if code is not None:
            reason, raw = REFUSALS.get(code, ("Refused", ""))
            extra.update(refusalReasonCode=code, **({"refusalReasonRaw": raw} if raw else {}))
            self.notify(psp, body["reference"], body["amount"], False, reason, extra)
            return {"pspReference": psp, "resultCode": "Refused", "refusalReason": reason,
                    "refusalReasonCode": code, "additionalData": {k: v for k, v in extra.items() if "refusal" in k}}
        self.notify(psp, body["reference"], body["amount"], True, "", extra)
        return {"pspReference": psp, "resultCode": "Authorised", "merchantReference": body["reference"]}

    def notify(self, psp: str, reference: str, amount: dict[str, Any], success: bool, reason: str,
               extra: dict[str, str], event_code: str = "AUTHORISATION", at: datetime | None = None) -> None:
        """Queue one signed Standard notification (sent by `deliver`)."""
        item: dict[str, Any] = {"pspReference": psp, "merchantAccountCode": self.merchant_account,
                                "merchantReference": reference, "amount": amount, "eventCode": event_code,
                                "success": "true" if success else "false", "paymentMethod": "visa",
                                "eventDate": (at or datetime.now(UTC)).isoformat(timespec="seconds"),
                                "reason": reason}
        signature = generate_notification_sig(item, self.hmac_key).decode()
        item["additionalData"] = {**extra, "hmacSignature": signature}
        self.outbox.append(orjson.dumps({"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}))

    def deliver(self) -> list[int]:
        """POST every queued notification to the gateway; Adyen expects `[accepted]`."""
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
        counts = Counter(e["reference"] for e in self.ledger if e["outcome"] == "Authorised")
        return {ref: n for ref, n in counts.items() if n > 1}
