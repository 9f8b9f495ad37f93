"""The three shipped outcome models, each with its own shape, and customers who react to dunning emails."""

from __future__ import annotations

import random

import pytest

from simulator.email_reaction import EmailSeen, act_probability, load_reaction, react, reaction_rng
from simulator.models import MODELS, ConfigModel, ModelConfigError, load_model
from simulator.outcomes import CardFacts, ChargeContext, InvoiceFacts


def context(
    days: float,
    *,
    customer: str = "cus_1",
    day_of_month: int = 9,
    hour: int = 10,
    attempt: int = 2,
    funding: str = "debit",
) -> ChargeContext:
    return ChargeContext(
        card=CardFacts(id="pm_1", brand="visa", funding=funding, country="US", fingerprint="fp"),
        invoice=InvoiceFacts(id="in_1", customer=customer, amount=2900, currency="usd"),
        attempt=attempt,
        days_since_first_failure=days,
        previous_decline="insufficient_funds",
        day_of_month=day_of_month,
        local_hour=hour,
        rng=random.Random(1),
    )


def model(name: str) -> ConfigModel:
    loaded = load_model(name)
    assert isinstance(loaded, ConfigModel)
    return loaded


@pytest.mark.parametrize("name", MODELS)
def test_every_shipped_model_loads_by_name(name: str) -> None:
    assert model(name).name == f"{name}@1"


def test_an_unknown_model_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ModelConfigError, match="late_peak"):
        load_model("nope")


def test_temporary_holds_recover_late_in_the_late_peak_model() -> None:
    late = model("late_peak")
    assert late.recovery_probability(context(12), "do_not_honor") > 3 * late.recovery_probability(
        context(2), "do_not_honor"
    )
    assert late.days_factor(12, "do_not_honor") > model("default").days_factor(15)


def test_pay_cycle_customers_recover_insufficient_funds_on_their_own_pay_days() -> None:
    cycle = model("pay_cycle")
    paydays = cycle.config.customer_paydays
    assert paydays is not None
    customer = "cus_42"
    payday = paydays.of(customer)[0]
    on = cycle.recovery_probability(context(5, customer=customer, day_of_month=payday), "insufficient_funds")
    off_day = next(d for d in range(1, 29) if all(not 0 <= d - p < 3 for p in paydays.of(customer)))
    off = cycle.recovery_probability(context(5, customer=customer, day_of_month=off_day), "insufficient_funds")
    assert on > 4 * off
    assert paydays.of(customer) == paydays.of(customer)  # a hash of the id, stable across runs


def test_pay_days_spread_over_the_month_across_customers() -> None:
    paydays = model("pay_cycle").config.customer_paydays
    assert paydays is not None
    firsts = {paydays.of(f"cus_{n}")[0] for n in range(200)}
    assert len(firsts) >= 6


def seen(template: str = "action_required", *, hour: int = 10, nth: int = 1, hard: bool = False) -> EmailSeen:
    return EmailSeen(template, hour, 1.0, nth, hard, 2900)


def test_an_email_reaction_is_deterministic_for_the_same_customer_and_email() -> None:
    cfg = load_reaction()
    answers = {react(cfg, seen(), reaction_rng(7, "cus_1", 0, "action_required", n)) for n in range(50)}
    again = {react(cfg, seen(), reaction_rng(7, "cus_1", 0, "action_required", n)) for n in range(50)}
    assert answers == again and None in answers and len(answers) > 1


def test_customers_act_more_on_a_dead_card_in_the_morning_and_less_on_repeats() -> None:
    cfg = load_reaction()
    base = act_probability(cfg, seen())
    assert act_probability(cfg, seen(hard=True)) > base > act_probability(cfg, seen(hour=3))
    assert act_probability(cfg, seen(nth=3)) < base
    assert act_probability(cfg, seen("recovered")) == 0


def test_reactions_happen_at_the_configured_rate() -> None:
    cfg = load_reaction()
    acted = sum(react(cfg, seen(), random.Random(n)) is not None for n in range(4000))
    assert abs(acted / 4000 - act_probability(cfg, seen())) < 0.03
