"""Pre-generate signed Stripe `invoice.payment_failed` deliveries (~2 KB each) into a file wrk can cycle.

One line per request: `<Stripe-Signature>\t<body>`; orjson escapes control characters, so a body never holds
a tab or a newline. With `duplicates=0.2` every fifth line repeats an earlier line byte for byte (a provider
retry), so the set of distinct event ids is smaller than the number of lines.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import random
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

SECRET = "whsec_bench_secret_for_payrisk"
CUSTOMERS = 2_000  # failures spread over this many customers, as a busy billing run would
_SIGNATURE_PREFIX = 90  # "t=<10 digits>,v1=<64 hex>": unique per distinct body


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """Stripe's documented scheme: HMAC-SHA256 over `f"{t}.{body}"`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def event_body(event_id: str, customer: str, invoice: str, created: int) -> bytes:
    """A Stripe-shaped `invoice.payment_failed` event in the basil shape, padded with real-looking fields."""
    line = {
        "id": f"il_{invoice}",
        "object": "line_item",
        "amount": 2500,
        "currency": "usd",
        "description": "1 × Pro plan (at $25.00 / month)",
        "discountable": True,
        "livemode": False,
        "metadata": {},
        "period": {"end": created + 2_592_000, "start": created},
        "pricing": {
            "price_details": {"price": "price_1PRO", "product": "prod_PRO"},
            "type": "price_details",
            "unit_amount_decimal": "2500",
        },
        "quantity": 1,
        "taxes": [],
        "subscription": "sub_1",
    }
    invoice_obj: dict[str, Any] = {
        "id": invoice,
        "object": "invoice",
        "customer": customer,
        "amount_due": 2500,
        "amount_paid": 0,
        "amount_remaining": 2500,
        "currency": "usd",
        "attempt_count": 1,
        "attempted": True,
        "next_payment_attempt": created + 259_200,
        "status": "open",
        "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically",
        "customer_email": f"{customer}@example.com",
        "customer_name": "Ada Lovelace",
        "customer_address": {
            "city": "London",
            "country": "GB",
            "line1": "12 St James's Square",
            "postal_code": "SW1Y 4JH",
        },
        "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_1/test_{invoice}",
        "invoice_pdf": f"https://pay.stripe.com/invoice/acct_1/test_{invoice}/pdf",
        "number": f"PR-{invoice[-6:]}",
        "period_start": created - 2_592_000,
        "period_end": created,
        "created": created,
        "livemode": False,
        "metadata": {"plan": "pro", "seats": "5"},
        "lines": {
            "object": "list",
            "data": [line],
            "has_more": False,
            "total_count": 1,
            "url": f"/v1/invoices/{invoice}/lines",
        },
        "parent": {"subscription_details": {"subscription": "sub_1"}, "type": "subscription_details"},
        "payments": {"data": [{"payment": {"type": "payment_intent", "payment_intent": f"pi_{invoice}"}}]},
        "subtotal": 2500,
        "total": 2500,
        "account_country": "GB",
        "account_name": "Acme Analytics Ltd",
        "automatic_tax": {"enabled": False, "liability": None, "status": None},
        "status_transitions": {
            "finalized_at": created,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "statement_descriptor": "ACME ANALYTICS",
        "footer": "Thank you for your business.",
    }
    return orjson.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "invoice.payment_failed",
            "created": created,
            "api_version": "2026-06-24.dahlia",
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "data": {"object": invoice_obj},
        }
    )


def lines(
    run: str, count: int, timestamp: int, duplicates: float, rng: random.Random, secret: str = SECRET,
    customers: int = CUSTOMERS,
) -> Iterator[bytes]:
    """`count` request lines; a `duplicates` share of them repeat an earlier line of this run. The failures fall on
    `customers` customers drawn at random (0: each failure its own customer, as in a renewal run)."""
    made: deque[bytes] = deque(maxlen=10_000)  # a provider retries recent events
    for n in range(count):
        if made and rng.random() < duplicates:
            yield rng.choice(made)
            continue
        body = event_body(
            f"evt_{run}_{n:07d}", f"cus_b{rng.randrange(customers):05d}" if customers else f"cus_{run}_{n:07d}",
            f"in_{run}_{n:07d}", timestamp
        )
        line = sign(body, secret, timestamp).encode() + b"\t" + body
        made.append(line)
        yield line


def write(path: Path, run: str, count: int, timestamp: int, duplicates: float = 0.0, seed: int = 9,
          customers: int = CUSTOMERS) -> int:
    """Write the lines to `path`; returns the number of distinct event ids in it."""
    rng = random.Random(seed)
    distinct: set[bytes] = set()
    with path.open("wb") as out:
        for line in lines(run, count, timestamp, duplicates, rng, customers=customers):
            distinct.add(line[:_SIGNATURE_PREFIX])
            out.write(line + b"\n")
    return len(distinct)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--run", default="demo", help="run id baked into every event id")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--timestamp", type=int, required=True, help="signature timestamp (unix seconds)")
    parser.add_argument("--duplicates", type=float, default=0.0, help="share of lines repeating earlier ones")
    args = parser.parse_args(argv)
    distinct = write(args.path, args.run, args.count, args.timestamp, args.duplicates)
    print(f"{args.count} lines, {distinct} distinct events → {args.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
