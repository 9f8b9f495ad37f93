"""The in-process recovery evaluation: paired luck, the pure core as the platform, honest counting."""

from __future__ import annotations

from bench.recovery import evaluate, table
from bench.recovery_world import EIGHT_IN_FOURTEEN, World, run_fixed
from payrisk.demo.network import violations


def test_every_approach_meets_the_same_failed_renewals_and_payrisk_never_retries_a_hard_decline() -> None:
    rows = evaluate("default", seed=3, customers=150, days=40)
    assert len({(t.failed, t.failed_amount) for t in rows}) == 1 and rows[0].failed > 0
    ours = rows[0]
    assert ours.retries_on_hard == 0 and not any(violations(ours.attempts).values())
    assert rows[2].retries_on_hard > 0  # the fixed schedule retries what said "never"
    assert "| payrisk |" in table("default", rows)


def test_the_evaluation_is_deterministic() -> None:
    first = [(t.recovered, t.retries, t.emails) for t in evaluate("pay_cycle", seed=5, customers=80, days=40)]
    again = [(t.recovered, t.retries, t.emails) for t in evaluate("pay_cycle", seed=5, customers=80, days=40)]
    assert first == again


def test_a_fixed_schedule_stops_at_the_first_success() -> None:
    world = World("late_peak", seed=9, customers=120, days=40)
    tally = run_fixed(world, world.failures(), "fixed", EIGHT_IN_FOURTEEN)
    assert tally.retries <= len(EIGHT_IN_FOURTEEN) * tally.failed
    assert tally.recovered <= tally.failed
