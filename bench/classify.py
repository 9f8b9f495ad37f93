"""Classifications per second: the pure function inline, and through the Ray classifier pool in batches.

Run: .venv/bin/python bench/classify.py [--items 50000] [--pool-items 50000] [--pool-sizes 1,2] [--batch 100]
Starts its own local Ray on 127.0.0.1 (unless one is already initialised in this process) and stops it.
The workload is a fixed, seeded mix of Stripe, Adyen, Braintree and Paddle declines, including unknown codes.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from typing import Any

import ray

from actors.classifier import NAMESPACE, ClassifierPool, Item, inline_classifier
from actors.domain.classification import classify, default_tables
from actors.domain.inbound import DeclineInfo

MIX: list[tuple[str, dict[str, Any]]] = [
    (
        "stripe",
        {"error_type": "card_error", "error_code": "card_declined", "decline_code": "insufficient_funds"},
    ),
    (
        "stripe",
        {"error_type": "card_error", "error_code": "card_declined", "decline_code": "generic_decline"},
    ),
    ("stripe", {"error_type": "card_error", "error_code": "card_declined", "decline_code": "do_not_honor"}),
    ("stripe", {"error_type": "card_error", "error_code": "expired_card", "card_brand": "visa"}),
    (
        "stripe",
        {"decline_code": "insufficient_funds", "network_advice_code": "21", "card_brand": "mastercard"},
    ),
    (
        "stripe",
        {
            "decline_code": "generic_decline",
            "outcome_type": "blocked",
            "outcome_reason": "highest_risk_level",
        },
    ),
    ("stripe", {"decline_code": "lost_card", "network_decline_code": "41", "card_brand": "visa"}),
    ("stripe", {"http_status": 429, "error_code": "rate_limit"}),
    ("stripe", {"http_status": 401, "error_type": "invalid_request_error"}),
    ("stripe", {"decline_code": "brand_new_code", "error_code": "card_declined"}),
    ("adyen", {"decline_code": "12", "network_decline_code": "51 : Insufficient funds"}),
    ("adyen", {"decline_code": "Refused"}),
    ("braintree", {"decline_code": "2001", "error_type": "soft_declined"}),
    ("braintree", {"decline_code": "2500"}),
    ("paddle", {"error_code": "declined"}),
    ("paddle", {"error_code": "declined_not_retryable"}),
]


def workload(count: int, rng: random.Random) -> list[Item]:
    tenants = ["acme", "globex", "initech", "umbrella"]
    return [(rng.choice(tenants), *rng.choice(MIX)) for _ in range(count)]


def timed(run: Callable[[], object], count: int, clock: Callable[[], float]) -> tuple[float, float]:
    """Seconds taken and classifications per second."""
    start = clock()
    run()
    seconds = clock() - start
    return seconds, count / seconds


def bench_inline(work: list[Item], clock: Callable[[], float]) -> list[tuple[str, int, float, float]]:
    tables = default_tables()
    models = [(t, p, DeclineInfo.model_validate(d)) for t, p, d in work]
    as_actor = inline_classifier(tables)
    rows = []
    seconds, rate = timed(
        lambda: [classify(p, d, tables.for_tenant(t)) for t, p, d in models], len(work), clock
    )
    rows.append(("inline: classify(DeclineInfo) -> Classification", len(work), seconds, rate))
    seconds, rate = timed(lambda: [as_actor(p, d) for _, p, d in work], len(work), clock)
    rows.append(("inline: dict in, JSON dict out (the actor's work)", len(work), seconds, rate))
    return rows


def bench_pool(
    work: list[Item], size: int, batch: int, clock: Callable[[], float]
) -> list[tuple[str, int, float, float]]:
    """Through the pool: as JSON dicts (transport only), and parsed back into Classification models."""
    pool = ClassifierPool(size, prefix=f"classifier-bench-{size}")
    try:
        pool.classify(work[: batch * size], batch_size=batch)  # warm up: actors started, tables loaded
        raw = timed(lambda: ray.get(pool.submit(work, batch_size=batch)), len(work), clock)
        parsed = timed(lambda: pool.classify(work, batch_size=batch), len(work), clock)
    finally:
        pool.kill()
    label = f"pool: {size} actor(s), batches of {batch}"
    return [(f"{label}, dicts", len(work), *raw), (f"{label}, models", len(work), *parsed)]


def print_table(rows: list[tuple[str, int, float, float]]) -> None:
    print(f"{'mode':<52} {'items':>8} {'seconds':>9} {'classifications/s':>18}")
    for mode, items, seconds, rate in rows:
        print(f"{mode:<52} {items:>8} {seconds:>9.3f} {rate:>18,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--pool-items", type=int, default=50_000)
    parser.add_argument("--pool-sizes", default="1,2")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng, clock = random.Random(args.seed), time.perf_counter
    rows = bench_inline(workload(args.items, rng), clock)
    started = not ray.is_initialized()
    if started:
        temp_dir = tempfile.mkdtemp(prefix="payrisk-ray-bench-")
        ray.init(
            include_dashboard=False, _node_ip_address="127.0.0.1", namespace=NAMESPACE, _temp_dir=temp_dir
        )
    try:
        pool_work = workload(args.pool_items, rng)
        for size in args.pool_sizes.split(","):
            rows += bench_pool(pool_work, int(size), args.batch, clock)
    finally:
        if started:
            ray.shutdown()
    print_table(rows)


if __name__ == "__main__":
    main()
