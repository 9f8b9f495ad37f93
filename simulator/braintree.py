"""The Braintree dialect of the simulator: the gateway API the official `braintree` SDK speaks (XML over HTTP
under `/merchants/{merchant_id}/…`, Basic auth with the public and private key), enough of it for recurring
billing and its recovery — `GET /subscriptions/{id}` (`Subscription.find`: status, balance, failure_count and the
transactions, newest first) and `POST /transactions` with a `subscription_id` (`Subscription.retry_charge`) — the
subscription's own billing and Braintree's own retries, and webhooks (`bt_signature` / `bt_payload`: base64 XML
signed with the SDK's `Crypto.sha1_hmac_hash`, the algorithm `WebhookNotification.parse` checks) POSTed
form-encoded to a gateway.

Point the SDK at it with `braintree.Environment("simulator", host, str(port), url, False, None)`; a port other than
443 makes the SDK speak plain HTTP. Every charge is decided by the shared outcome model and written to the shared
ledger (`simulator/dialect.py`); the model's decline codes become processor responses (`PROCESSOR`).

Braintree has no idempotency keys: a `retry_charge` sent twice charges twice, exactly as the real gateway, so a
client must look before charging again. The dialect's fault `error_after_charge` charges and then answers 500.
Webhooks: the subscription's own billing and Braintree's own retries send `subscription_charged_unsuccessfully`
(and `subscription_went_past_due` the first time) or `subscription_charged_successfully`; a successful
`retry_charge` of a past-due subscription sends `subscription_charged_successfully` and `subscription_went_active`;
a declined `retry_charge` sends none (its caller has the answer).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape

import httpx
from braintree.util.crypto import Crypto
from braintree.util.xml_util import XmlUtil
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.dialect import Card, PaymentBook
from simulator.outcomes import Outcome

#: the model's decline code → (processor_response_code, processor_response_text, processor_response_type);
#: `fraudulent` is a gateway rejection (`fraud`), as Braintree's fraud tools answer
PROCESSOR: dict[str, tuple[str, str, str]] = {
    "insufficient_funds": ("2001", "Insufficient Funds", "soft_declined"),
    "generic_decline": ("2046", "Declined", "soft_declined"),
    "do_not_honor": ("2000", "Do Not Honor", "soft_declined"),
    "card_velocity_exceeded": ("2002", "Limit Exceeded", "soft_declined"),
    "withdrawal_count_limit_exceeded": ("2003", "Cardholder's Activity Limit Exceeded", "soft_declined"),
    "try_again_later": ("2038", "Processor Declined", "soft_declined"),
    "reenter_transaction": ("2038", "Processor Declined", "soft_declined"),
    "issuer_not_available": ("3000", "Processor Network Unavailable - Try Again", "soft_declined"),
    "processing_error": ("3000", "Processor Network Unavailable - Try Again", "soft_declined"),
    "expired_card": ("2004", "Expired Card", "hard_declined"),
    "incorrect_cvc": ("2010", "Card Issuer Declined CVV", "hard_declined"),
    "incorrect_number": ("2005", "Invalid Credit Card Number", "hard_declined"),
    "invalid_account": ("2007", "No Account", "hard_declined"),
    "lost_card": ("2012", "Processor Declined - Possible Lost Card", "hard_declined"),
    "stolen_card": ("2013", "Processor Declined - Possible Stolen Card", "hard_declined"),
    "pickup_card": ("2047", "Call Issuer. Pick Up Card", "hard_declined"),
    "restricted_card": ("2057", "Issuer or Cardholder has put a restriction on the card", "soft_declined"),
    "transaction_not_allowed": ("2015", "Transaction Not Allowed", "hard_declined"),
    "revocation_of_authorization": ("2017", "Cardholder Stopped Billing", "hard_declined"),
    "stop_payment_order": ("2017", "Cardholder Stopped Billing", "hard_declined"),
    "revocation_of_all_authorizations": ("2018", "Cardholder Stopped All Billing", "hard_declined"),
    "authentication_required": ("2099", "Cardholder Authentication Required", "soft_declined"),
}
CARD_TYPES = {"visa": "Visa", "mastercard": "MasterCard", "amex": "American Express", "discover": "Discover"}
_PAID = ("submitted_for_settlement", "authorized", "settled")


@dataclass
class Subscription:
    id: str
    customer: str
    token: str  # the vaulted card (a card of the book)
    price: int  # minor units
    currency: str
    period_start: date
    status: str = "Active"
    balance: int = 0
    failure_count: int = 0
    transactions: list[str] = field(default_factory=list)  # newest first, as Braintree lists them

    @property
    def period_end(self) -> date:
        return self.period_start + timedelta(days=30)

    @property
    def invoice(self) -> str:
        """What payrisk calls the failed payment: the subscription and the billing period it was for."""
        return f"{self.id}:{self.period_start.isoformat()}"


class BraintreeDialect:
    def __init__(self, merchant_id: str, public_key: str, private_key: str, webhook_url: str | None = None,
                 book: PaymentBook | None = None) -> None:
        self.merchant_id, self.public_key, self.private_key = merchant_id, public_key, private_key
        self.webhook_url = webhook_url
        self.book = book or PaymentBook()
        self.subscriptions: dict[str, Subscription] = {}
        self.transactions: dict[str, dict[str, Any]] = {}
        self.outbox: list[dict[str, str]] = []
        self.error_after_charge = False  # fault: charge, then answer 500 (the answer is lost)
        self.calls: list[tuple[str, str]] = []  # (method, path) of every API request, for tests
        self._lock = threading.RLock()
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------------------------------------ the vault
    def customer(self, customer_id: str, token: str, email: str | None = None, **card: Any) -> Card:
        """A customer with one vaulted card (`brand`, `funding`, `country`, `utc_offset_hours`, `forced`)."""
        return self.book.add_card(token, customer_id, email=email, **card)

    def subscribe(self, subscription_id: str, token: str, price: int, currency: str = "usd",
                  period_start: date | None = None) -> Subscription:
        card = self.book.cards[token]
        sub = Subscription(subscription_id, card.customer, token, price, currency,
                           period_start or self.book.now().date())
        self.subscriptions[sub.id] = sub
        return sub

    # --------------------------------------------------------------------------------- Braintree's own billing
    def bill(self, subscription_id: str) -> dict[str, Any]:
        """The subscription's recurring charge (or, past due, Braintree's own retry of it), with its webhooks."""
        with self._lock:
            sub = self.subscriptions[subscription_id]
            was_active = sub.status == "Active"
            txn = self._charge(sub, sub.price, source="automatic" if sub.failure_count == 0 else "provider_retry")
            if txn["status"] in _PAID:
                sub.status, sub.balance, sub.failure_count = "Active", 0, 0
                self.notify("subscription_charged_successfully", sub)
            else:
                sub.status, sub.balance, sub.failure_count = "Past Due", sub.price, sub.failure_count + 1
                self.notify("subscription_charged_unsuccessfully", sub)
                if was_active:
                    self.notify("subscription_went_past_due", sub)
            return txn

    # --------------------------------------------------------------------------------------------------- the API
    def app(self) -> Starlette:
        base = "/merchants/{merchant}"
        return Starlette(routes=[Route(base + "/subscriptions/{id}", self._find, methods=["GET"]),
                                 Route(base + "/transactions", self._sale, methods=["POST"])])

    def _authorized(self, request: Request) -> Response | None:
        self.calls.append((request.method, request.url.path))
        header = request.headers.get("authorization", "")
        try:
            user, _, password = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = password = ""
        if (user, password) != (self.public_key, self.private_key):
            return Response(status_code=401)
        if request.path_params["merchant"] != self.merchant_id:
            return Response(status_code=404)
        return None

    async def _find(self, request: Request) -> Response:
        if (refused := self._authorized(request)) is not None:
            return refused
        sub = self.subscriptions.get(request.path_params["id"])
        if sub is None:
            return Response(status_code=404)
        with self._lock:
            return _xml(self._subscription_xml(sub))

    async def _sale(self, request: Request) -> Response:
        if (refused := self._authorized(request)) is not None:
            return refused
        params = XmlUtil.dict_from_xml(await request.body()).get("transaction") or {}
        sub = self.subscriptions.get(str(params.get("subscription_id") or ""))
        if sub is None or params.get("type") != "sale":
            return _xml(_error_xml("Subscription ID is invalid.", "91903", "subscription_id"), 422)
        with self._lock:
            if sub.status != "Past Due" or sub.balance == 0:
                return _xml(_error_xml("Subscription status must be Past Due in order to retry.", "91531",
                                       "subscription_id"), 422)
            amount = _minor(params.get("amount")) or sub.balance
            txn = self._charge(sub, amount, source="api")
            paid = txn["status"] in _PAID
            if paid:
                sub.status, sub.balance, sub.failure_count = "Active", 0, 0
                self.notify("subscription_charged_successfully", sub)
                self.notify("subscription_went_active", sub)
            if self.error_after_charge:
                return Response(status_code=500)
            body = self._transaction_xml(txn)
        if paid:
            return _xml(body)
        return _xml(_error_xml(str(txn["processor_response_text"]), None, None, body), 422)

    # ------------------------------------------------------------------------------------------------ charging
    def _charge(self, sub: Subscription, amount: int, source: str) -> dict[str, Any]:
        txn_id = f"bt{next(self._ids):07d}"
        outcome = self.book.attempt(sub.invoice, sub.token, amount, sub.currency, source=source, charge_id=txn_id)
        card = self.book.cards[sub.token]
        txn: dict[str, Any] = {"id": txn_id, "created_at": self.book.now(), "amount": amount,
                               "currency": sub.currency, "subscription": sub.id, "customer": sub.customer,
                               "email": card.email, "token": sub.token, "card_type": CARD_TYPES.get(card.brand,
                               card.brand), "fingerprint": card.fingerprint, "country": card.country,
                               "period_start": sub.period_start, "period_end": sub.period_end,
                               **_response(outcome)}
        self.transactions[txn_id] = txn
        sub.transactions.insert(0, txn_id)
        return txn

    # ---------------------------------------------------------------------------------------------------- XML
    def _transaction_xml(self, t: dict[str, Any]) -> str:
        optional = "".join(_node(name, t.get(key)) for name, key in (
            ("processor-response-code", "processor_response_code"), ("processor-response-text",
             "processor_response_text"), ("processor-response-type", "processor_response_type"),
            ("network-response-code", "network_response_code"), ("merchant-advice-code", "merchant_advice_code"),
            ("gateway-rejection-reason", "gateway_rejection_reason")))
        return (f"<transaction><id>{t['id']}</id><status>{t['status']}</status><type>sale</type>"
                f"<amount>{_decimal(t['amount'])}</amount><currency-iso-code>{t['currency'].upper()}"
                f"</currency-iso-code><created-at type=\"datetime\">{_stamp(t['created_at'])}</created-at>"
                f"<updated-at type=\"datetime\">{_stamp(t['created_at'])}</updated-at>"
                f"<subscription-id>{escape(t['subscription'])}</subscription-id><recurring type=\"boolean\">true"
                f"</recurring><subscription><billing-period-start-date type=\"date\">{t['period_start']}"
                f"</billing-period-start-date><billing-period-end-date type=\"date\">{t['period_end']}"
                f"</billing-period-end-date></subscription><customer><id>{escape(t['customer'])}</id>"
                f"{_node('email', t['email'])}</customer><credit-card><token>{escape(t['token'])}</token>"
                f"<card-type>{escape(t['card_type'])}</card-type><unique-number-identifier>{t['fingerprint']}"
                f"</unique-number-identifier><country-of-issuance>{t['country']}</country-of-issuance>"
                f"</credit-card>{optional}</transaction>")

    def _subscription_xml(self, sub: Subscription) -> str:
        transactions = "".join(self._transaction_xml(self.transactions[t]) for t in sub.transactions)
        days_past_due = "" if sub.status != "Past Due" else (
            f"<days-past-due type=\"integer\">{max(0, (self.book.now().date() - sub.period_start).days)}"
            "</days-past-due>")
        return (f"<subscription><id>{escape(sub.id)}</id><status>{sub.status}</status>"
                f"<balance>{_decimal(sub.balance)}</balance><price>{_decimal(sub.price)}</price>"
                f"<failure-count type=\"integer\">{sub.failure_count}</failure-count>"
                f"<payment-method-token>{escape(sub.token)}</payment-method-token><plan-id>monthly</plan-id>"
                f"<billing-period-start-date type=\"date\">{sub.period_start}</billing-period-start-date>"
                f"<billing-period-end-date type=\"date\">{sub.period_end}</billing-period-end-date>"
                f"<next-billing-date type=\"date\">{sub.period_end + timedelta(days=1)}</next-billing-date>"
                f"{days_past_due}<transactions type=\"array\">{transactions}</transactions>"
                "<add-ons type=\"array\"/><discounts type=\"array\"/><status-history type=\"array\"/>"
                "</subscription>")

    # ----------------------------------------------------------------------------------------------- webhooks
    def notify(self, kind: str, sub: Subscription) -> None:
        """Queue one signed notification about `sub` (sent by `deliver`)."""
        xml = (f"<notification><timestamp type=\"datetime\">{_stamp(self.book.now())}</timestamp>"
               f"<kind>{kind}</kind><subject>{self._subscription_xml(sub)}</subject></notification>")
        payload = base64.encodebytes(xml.encode()).decode()
        signature = f"{self.public_key}|{Crypto.sha1_hmac_hash(self.private_key, payload)}"
        self.outbox.append({"bt_signature": signature, "bt_payload": payload})

    def deliver(self) -> list[int]:
        """POST every queued notification (form-encoded); Braintree retries what is not answered 2xx."""
        with self._lock:
            sent, self.outbox = self.outbox, []
        statuses = []
        for form in sent:
            answer = httpx.post(str(self.webhook_url), content=urlencode(form).encode(), timeout=10,
                                headers={"content-type": "application/x-www-form-urlencoded"})
            statuses.append(answer.status_code)
            if not 200 <= answer.status_code < 300:
                self.outbox.append(form)
        return statuses

    def charges(self, subscription_id: str, source: str | None = None) -> list[dict[str, Any]]:
        """The subscription's transactions, oldest first (optionally only those made through the API)."""
        entries = [e for e in self.book.ledger.entries() if e.invoice.startswith(subscription_id + ":")]
        return [e.model_dump() for e in entries if source in (None, e.source)]


def _response(outcome: Outcome) -> dict[str, Any]:
    if outcome.succeeded:
        return {"status": "submitted_for_settlement", "processor_response_code": "1000",
                "processor_response_text": "Approved", "processor_response_type": "approved"}
    if outcome.decline_code == "fraudulent":
        return {"status": "gateway_rejected", "gateway_rejection_reason": "fraud",
                "processor_response_text": "Gateway Rejected: fraud"}
    code, text, kind = PROCESSOR.get(outcome.decline_code or "", ("2046", "Declined", "soft_declined"))
    return {"status": "processor_declined", "processor_response_code": code, "processor_response_text": text,
            "processor_response_type": kind, "network_response_code": outcome.network_decline_code,
            "merchant_advice_code": outcome.network_advice_code}


def _error_xml(message: str, code: str | None, attribute: str | None, transaction: str = "") -> str:
    errors = "" if code is None else (
        f"<transaction><errors type=\"array\"><error><code>{code}</code><attribute>{attribute}</attribute>"
        f"<message>{escape(message)}</message></error></errors></transaction>")
    return (f"<api-error-response><errors><errors type=\"array\"/>{errors}</errors>"
            f"<message>{escape(message)}</message>{transaction}</api-error-response>")


def _xml(body: str, status: int = 200) -> Response:
    return Response('<?xml version="1.0" encoding="UTF-8"?>\n' + body, status_code=status,
                    media_type="application/xml")


def _node(name: str, value: Any) -> str:
    return f"<{name} nil=\"true\"/>" if value in (None, "") else f"<{name}>{escape(str(value))}</{name}>"


def _decimal(minor: int) -> str:
    return str((Decimal(minor) / 100).quantize(Decimal("0.01")))


def _minor(value: Any) -> int | None:
    return int(Decimal(str(value)) * 100) if value not in (None, "") else None


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")
