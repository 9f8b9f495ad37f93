"""How fast this machine runs Python right now: a fixed single-threaded workload, timed a few times.

    .venv/bin/python -m bench.calibrate            # one line: best and median seconds of the fixed workload

The same code takes 57 s on one day and twice that on another when the host's CPU is shared (a VM's neighbours,
frequency), and no benchmark here can measure a ceiling for "Python deciding a webhook". This gives every result a
yardstick measured in the same sitting: a fixed mix of what the platform's processes do per webhook — parse and
serialize a Stripe-shaped JSON body, compute an HMAC-SHA256 signature, build and walk dicts and strings — repeated
`ROUNDS` times. `best` is the machine's capability (the least disturbed try), `median` what a process got while the
machine was as busy as it was. Divide a wall time by `best` to compare sittings; a `median` well above `best` says
the machine was contended while calibrating.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import statistics
import time
from typing import Any

ROUNDS = 4_000
TRIES = 5

_BODY = {
    "id": "evt_1QxYzAbCdEfGhIjK", "object": "event", "api_version": "2025-03-31.basil", "created": 1_767_225_600,
    "type": "invoice.payment_failed", "livemode": False, "pending_webhooks": 1,
    "data": {"object": {
        "id": "in_1QxYzAbCdEfGhIjK", "object": "invoice", "customer": "cus_RaNdOmCuStOmEr", "currency": "eur",
        "amount_due": 4_900, "amount_paid": 0, "amount_remaining": 4_900, "attempt_count": 1, "billing_reason":
        "subscription_cycle", "status": "open", "next_payment_attempt": 1_767_484_800,
        "lines": {"object": "list", "data": [{"id": f"il_{i:04d}", "amount": 4_900, "currency": "eur",
                                              "description": "1 × Pro (at €49.00 / month)"} for i in range(3)]},
        "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_RaNdOm"}},
        "last_finalization_error": None, "metadata": {"plan": "pro", "region": "eu-west"},
    }},
}


def workload(rounds: int = ROUNDS) -> int:
    """The fixed work: per round, one body serialized, signed, parsed and walked. Returns a checksum (so that
    nothing is optimized away and two runs can be seen to have done the same work)."""
    secret = b"whsec_calibration_secret_0123456789"
    checksum = 0
    for i in range(rounds):
        body = json.dumps(_BODY, separators=(",", ":")).encode()
        signed = f"{1_767_225_600 + i}.".encode() + body
        digest = hmac.new(secret, signed, hashlib.sha256).hexdigest()
        event: dict[str, Any] = json.loads(body)
        invoice = event["data"]["object"]
        facts = {key: value for key, value in invoice.items() if not isinstance(value, dict | list)}
        words = " ".join(f"{key}={value}" for key, value in sorted(facts.items())).split()
        checksum = (checksum + len(words) + int(digest[:4], 16) + sum(line["amount"] for line in invoice["lines"]
                                                                      ["data"])) % 1_000_003
    return checksum


def calibrate(tries: int = TRIES, rounds: int = ROUNDS) -> dict[str, float]:
    """Time `workload` `tries` times: best, median and worst seconds."""
    workload(rounds // 10)  # warm the caches and the allocator
    times = []
    for _ in range(tries):
        started = time.perf_counter()
        workload(rounds)
        times.append(time.perf_counter() - started)
    return {"best": round(min(times), 3), "median": round(statistics.median(times), 3), "worst": round(max(times), 3)}


def describe(result: dict[str, float]) -> str:
    return f"calibration {result['best']:.3f} s best / {result['median']:.3f} s median ({ROUNDS:,} rounds)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=TRIES)
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a line")
    args = parser.parse_args(argv)
    result = calibrate(args.tries)
    print(json.dumps(result) if args.json else describe(result))


if __name__ == "__main__":
    main()
