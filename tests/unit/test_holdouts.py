"""The holdout arm: stable under replay, unbiased, and the uplift measured with an honest interval."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from actors.domain.analytics import holdout_uplift
from actors.domain.case import empty_state
from actors.domain.decide import decide_inbound
from actors.domain.decisions import Context
from actors.domain.strategy_planner import StrategyPlanner
from actors.planning import classifier_for
from strategies.holdout import Holdouts, default_holdouts, holdout_draw

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOLDOUTS = default_holdouts()


def test_the_default_share_is_five_percent_and_a_tenant_may_set_its_own() -> None:
    assert HOLDOUTS.share("anyone") == 0.05
    assert HOLDOUTS.model_copy(update={"tenants": {"acme": 0.0}}).is_held_out("acme", "in_1") is False


def test_membership_is_a_pure_function_of_tenant_and_invoice() -> None:
    arms = [HOLDOUTS.is_held_out("t1", f"in_{n}") for n in range(20_000)]
    assert arms == [HOLDOUTS.is_held_out("t1", f"in_{n}") for n in range(20_000)]  # replay: the same arms
    assert abs(sum(arms) / len(arms) - 0.05) < 0.006
    other = [HOLDOUTS.is_held_out("t2", f"in_{n}") for n in range(20_000)]
    assert arms != other  # each tenant has its own draw


def test_the_split_is_unbiased_on_a_synthetic_population() -> None:
    rng = random.Random(4)
    population = [(f"in_{n}", rng.choice([900, 2900, 9900]), rng.choice(["insufficient_funds", "do_not_honor"]))
                  for n in range(40_000)]
    held = [p for p in population if HOLDOUTS.is_held_out("t1", p[0])]
    rest = [p for p in population if not HOLDOUTS.is_held_out("t1", p[0])]
    mean = lambda rows: sum(amount for _, amount, _ in rows) / len(rows)  # noqa: E731
    share = lambda rows: sum(reason == "do_not_honor" for *_, reason in rows) / len(rows)  # noqa: E731
    assert abs(mean(held) - mean(rest)) < 250 and abs(share(held) - share(rest)) < 0.03
    assert all(0 <= holdout_draw("t1", p[0]) < 1 for p in population[:100])


def decide(invoice: str, holdouts: Holdouts) -> dict[str, Any]:
    event = {"kind": "payment_failed", "provider": "stripe", "provider_event_id": f"evt_{invoice}",
             "provider_event_type": "invoice.payment_failed", "occurred_at": T0.isoformat(), "customer_id": "cus_1",
             "invoice_id": invoice, "amount_due": 2500, "currency": "usd", "customer_email": "ada@example.com",
             "decline": {"decline_code": "do_not_honor", "card_country": "US", "card_brand": "visa"}}
    ctx = Context(now=T0, classify=classifier_for("t1"), planner=StrategyPlanner(holdouts=holdouts))
    case: dict[str, Any] = decide_inbound(empty_state("t1", "cus_1"), event, ctx).state["cases"][invoice]
    return case


def test_a_held_out_case_records_the_baseline_strategy_and_its_arm_on_its_decisions() -> None:
    everyone = HOLDOUTS.model_copy(update={"default_share": 0.5})
    held = next(f"in_{n}" for n in range(100) if everyone.is_held_out("t1", f"in_{n}"))
    treated = next(f"in_{n}" for n in range(100) if not everyone.is_held_out("t1", f"in_{n}"))
    case = decide(held, everyone)
    assert case["strategy"]["id"] == "holdout_baseline" and case["strategy"]["segment"] == "holdout"
    assert case["strategy"]["arm"] == "holdout" and case["state"] == "retry_scheduled"
    assert decide(treated, everyone)["strategy"]["arm"] == "treatment"
    assert decide(held, everyone) == case  # replay decides the same arm


def test_the_uplift_interval_covers_the_true_difference_on_a_synthetic_population() -> None:
    rng = random.Random(11)
    cases = []
    for n in range(30_000):
        arm = "holdout" if HOLDOUTS.is_held_out("t1", f"in_{n}") else "treatment"
        amount = rng.choice([900, 2900, 9900])
        recovered = rng.random() < (0.40 if arm == "holdout" else 0.50)
        cases.append({"arm": arm, "currency": "usd", "amount_due": amount, "recovered_amount": amount * recovered})
    (row,) = holdout_uplift(cases)
    low, high = row["uplift_ci95"]
    assert low < 0.10 < high and low > 0 and row["incremental_revenue"] > 0
    assert row["holdout"]["cases"] < 0.07 * 30_000


def test_without_a_holdout_arm_no_uplift_is_claimed() -> None:
    (row,) = holdout_uplift([{"arm": "treatment", "currency": "eur", "amount_due": 100, "recovered_amount": 100}])
    assert row["uplift"] is None and row["incremental_ci95"] is None
