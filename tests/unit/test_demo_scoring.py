"""The demo's pure parts: scoring a provider ledger, network-rule windows, paired outcomes, the summary."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from payrisk.demo.ledger import charges_per_key, score
from payrisk.demo.network import AttemptRow, busiest_window, violations
from payrisk.demo.paired import PairedModel
from payrisk.demo.summary import Approach, Checks, Deliveries, Run, Summary, render
from simulator.catalog import is_hard
from simulator.ledger import LedgerEntry
from simulator.outcomes import CardFacts, ChargeContext, InvoiceFacts, Outcome

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def entry(
    invoice: str,
    n: int,
    outcome: str,
    *,
    source: str = "api",
    code: str | None = None,
    advice: str | None = None,
    pm: str = "pm_1",
    amount: int = 900,
    currency: str = "usd",
) -> LedgerEntry:
    return LedgerEntry(
        at=T0 + timedelta(days=n),
        charge=f"ch_{invoice}_{n}",
        invoice=invoice,
        customer="cus_1",
        payment_method=pm,
        amount=amount,
        currency=currency,
        idempotency_key=None if source == "automatic" else f"k:{invoice}:{n}",
        source=source,
        attempt=n,
        outcome=outcome,
        decline_code=code,
        network_advice_code=advice,
    )


def test_a_declined_renewal_paid_by_a_later_attempt_counts_as_failed_and_recovered() -> None:
    ledger = [
        entry("in_a", 1, "declined", source="automatic", code="insufficient_funds"),
        entry("in_a", 2, "declined", code="insufficient_funds"),
        entry("in_a", 3, "succeeded"),
        entry("in_b", 1, "succeeded", source="automatic"),
        entry("in_c", 1, "declined", source="automatic", code="do_not_honor", amount=2900, currency="eur"),
    ]
    row = score("x", ledger, is_hard)
    assert (row.failed, row.recovered, row.retries, row.still_open) == (2, 1, 2, 1)
    assert row.revenue_failed == {"usd": 900, "eur": 2900} and row.revenue_saved == {"usd": 900}
    assert row.recovery_rate == 0.5


def test_an_attempt_after_a_hard_decline_or_a_stop_advice_code_is_counted_against_the_approach() -> None:
    ledger = [
        entry("in_a", 1, "declined", source="automatic", code="lost_card"),
        entry("in_a", 2, "declined"),
        entry("in_b", 1, "declined", source="automatic", code="generic_decline", advice="03"),
        entry("in_b", 2, "declined", pm="pm_new"),
        entry("in_b", 3, "declined"),
    ]
    assert score("x", ledger, is_hard).retries_after_do_not_retry == 2  # the new card's attempt is fine


def test_charges_per_key_counts_keys_that_reached_the_ledger_twice() -> None:
    twice = entry("in_a", 2, "declined")
    assert charges_per_key([twice, twice, entry("in_a", 3, "succeeded")]) == {"1": 1, "2": 1}


def test_the_busiest_window_counts_attempts_less_than_a_window_apart() -> None:
    times = [T0 + timedelta(days=d) for d in (0, 10, 29, 30, 45)]
    assert busiest_window(times, timedelta(days=30)) == 3  # days 0, 10, 29 (day 30 starts a new window)
    assert busiest_window([], timedelta(days=30)) == 0


def test_a_visa_card_tried_sixteen_times_in_thirty_days_breaks_the_rule_and_fifteen_do_not() -> None:
    def rows(card: str, n: int) -> list[AttemptRow]:
        return [
            AttemptRow(card=card, brand="visa", at=T0 + timedelta(days=i), declined=True) for i in range(n)
        ]

    found = violations([*rows("fp_ok", 15), *rows("fp_bad", 16)])
    assert found["visa_over_15_per_30d"] == 1 and found["mastercard_over_35_per_30d"] == 0


def test_eleven_mastercard_declines_within_a_day_break_the_daily_rule() -> None:
    rows = [
        AttemptRow(card="fp", brand="mastercard", at=T0 + timedelta(hours=i), declined=True)
        for i in range(11)
    ]
    assert violations(rows)["mastercard_over_10_declines_per_24h"] == 1


class _Recorder:
    name = "recorder"

    def decide(self, ctx: ChargeContext) -> Outcome:
        return (
            Outcome.success() if ctx.rng.random() < 0.5 else Outcome(succeeded=False, decline_code="generic")
        )


def _ctx(invoice: str, attempt: int) -> ChargeContext:
    return ChargeContext(
        card=CardFacts(id="pm", brand="visa", funding="credit", country="US", fingerprint="fp"),
        invoice=InvoiceFacts(id=invoice, customer="cus_1", amount=900, currency="usd"),
        attempt=attempt,
        days_since_first_failure=None,
        previous_decline=None,
        day_of_month=1,
        local_hour=9,
        rng=random.Random(invoice),
    )


def test_paired_models_give_a_customers_nth_invoice_the_same_luck_whatever_its_id() -> None:
    first, second = PairedModel(_Recorder(), seed=7), PairedModel(_Recorder(), seed=7)
    left = [first.decide(_ctx("in_run_a_1", n)) for n in range(1, 20)]
    right = [second.decide(_ctx("in_run_b_7", n)) for n in range(1, 20)]
    assert left == right
    assert first.ordinal("cus_1", "in_run_a_2") == 1  # a second invoice of the customer is another draw


def test_a_double_charge_or_an_unapplied_delivery_fails_the_checks_and_the_summary_says_so() -> None:
    deliveries = Deliveries(acknowledged=10, stored=10, applied=6, ignored=3, quarantined=0, pending=1)
    checks = Checks(
        double_charges=1,
        charges_per_attempt={"1": 4},
        attempts_without_charge=0,
        deliveries=deliveries,
        network_violations={"visa_over_15_per_30d": 0},
        platform_revenue_matches_ledger=True,
    )
    assert not checks.passed and len(checks.failures) == 2
    row = Approach(
        name="payrisk",
        failed=2,
        recovered=1,
        retries=3,
        revenue_failed={"usd": 1800},
        revenue_saved={"usd": 900},
        retries_after_do_not_retry=0,
    )
    run = Run(
        customers=5,
        days=30,
        seed=7,
        tenant="default",
        id_namespace="ab",
        database=None,
        start=T0.isoformat(),
        step_hours=1.0,
        wall_seconds=1.0,
        platform_seconds=1.0,
        customer_days_per_second=150.0,
    )
    text = render(Summary(run=run, platform=row, no_retry=row, fixed_schedule=row, checks=checks))
    assert "integrity: FAILED" in text and "usd 9.00" in text and "charged twice" in text


def test_every_revenue_line_keeps_a_space_between_its_label_and_its_amounts() -> None:
    """The longest approach's name ("fixed 8 tries in 14 days") ran into its amounts."""
    checks = Checks(double_charges=0, charges_per_attempt={}, attempts_without_charge=0,
                    deliveries=Deliveries(acknowledged=0, stored=0, applied=0, ignored=0, quarantined=0, pending=0),
                    network_violations={}, platform_revenue_matches_ledger=True)
    rows = [Approach(name=name, failed=2, recovered=1, retries=3, revenue_failed={"usd": 1800},
                     revenue_saved={"usd": 41800}, retries_after_do_not_retry=0)
            for name in ("payrisk", "no retry", "fixed 3 × 8 days", "fixed 8 tries in 14 days")]
    run = Run(customers=5, days=30, seed=7, tenant="default", id_namespace="ab", database=None,
              start=T0.isoformat(), step_hours=1.0, wall_seconds=1.0, platform_seconds=1.0,
              customer_days_per_second=150.0)
    text = render(Summary(run=run, platform=rows[0], no_retry=rows[1], fixed_schedule=rows[2],
                          fixed_8_in_14=rows[3], checks=checks))
    saved = text.split("revenue saved\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(saved) == 5 and all("  usd 418.00" in line for line in saved[:4]), saved
    assert "fixed 8 tries in 14 days  usd 418.00" in text
