"""The learned retry timing: a model fitted from a ledger, and the slots it chooses under every guard rail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.calendar import default_countries, weekday_name
from strategies.learned import Observation, Slot, default_prior, fit, prior_model
from strategies.loader import default_book
from strategies.model import RetryPolicy
from strategies.network import NetworkLimits, check_network_budget
from strategies.planner import plan_next
from strategies.segments import CustomerProfile

BOOK = default_book()
LEARNED = ("aggressive", "standard", "conservative", "new_customer")
REASONS = ("insufficient_funds", "do_not_honor", "generic_decline", "card_velocity_exceeded")
T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def slot(days: float, reason: str = "generic_decline", hour: int = 10, **kw: object) -> Slot:
    return Slot(reason, kw.get("funding", "credit"), days, hour, int(kw.get("dom", 9)), 1)  # type: ignore[arg-type]


def test_without_data_the_model_is_the_prior() -> None:
    assert fit(default_prior(), []).factors == {} and prior_model().probability(slot(5)) > 0


def test_a_ledger_where_early_retries_never_work_moves_the_model_away_from_early_retries() -> None:
    early = [Observation(slot(1.2), False) for _ in range(400)]
    ledger = early + [Observation(slot(8), n % 3 == 0) for n in range(400)]
    model = fit(default_prior(), ledger)
    assert model.probability(slot(1.2)) < 0.3 * prior_model().probability(slot(1.2))
    assert model.probability(slot(8)) > prior_model().probability(slot(8))
    assert fit(default_prior(), ledger) == model  # the same ledger, the same model


def test_thin_data_barely_moves_the_prior() -> None:
    model = fit(default_prior(), [Observation(slot(3), False) for _ in range(3)])
    assert model.probability(slot(3)) > 0.7 * prior_model().probability(slot(3))


def test_insufficient_funds_prefers_the_customers_own_pay_days() -> None:
    own = Slot("insufficient_funds", "debit", 5, 10, 22, 1, (22,))
    other_day = Slot("insufficient_funds", "debit", 5, 10, 9, 1, (22,))
    assert prior_model().probability(own) > 2 * prior_model().probability(other_day)


def plan(strategy_id: str, reason: str, attempts: int, now: datetime, history: list[datetime], brand: str,
         country: str, pay_days: tuple[int, ...], ledger_bias: float, visa_category: int | None = 4,
         advice: str | None = None):  # type: ignore[no-untyped-def]
    ledger = [Observation(slot(d / 4, reason), (d * 7919) % 100 < ledger_bias * 100) for d in range(80)]
    return plan_next(
        BOOK.get(strategy_id), category="SOFT_DECLINE", reason=reason, attempts_made=attempts,
        first_failed_at=T0, now=now,
        profile=CustomerProfile(customer_id="c", country=country, invoice_amount=2900),
        card_history=[*history, now], brand=brand, visa_category=visa_category, mc_advice_code=advice,
        min_delay_seconds=0,
        seed=1, limits=NetworkLimits(), segment="s", timing=fit(default_prior(), ledger), funding="debit",
        pay_days=pay_days)


cases = st.fixed_dictionaries({
    "strategy_id": st.sampled_from(LEARNED), "reason": st.sampled_from(REASONS), "attempts": st.integers(1, 7),
    "now": st.floats(0, 20).map(lambda d: T0 + timedelta(days=d)),
    "history": st.lists(st.floats(0, 29), max_size=16).map(lambda ds: sorted(T0 - timedelta(days=d) for d in ds)),
    "brand": st.sampled_from(["visa", "mastercard", "amex"]), "country": st.sampled_from(["US", "DE", "JP", "AU"]),
    "pay_days": st.lists(st.integers(1, 28), max_size=3).map(lambda d: tuple(sorted(set(d)))),
    "ledger_bias": st.floats(0, 1), "visa_category": st.sampled_from([None, 1, 2, 3, 4]),
    "advice": st.sampled_from([None, "02", "03", "21", "25", "30"]),
})  # fmt: skip


@settings(max_examples=250, deadline=None)
@given(cases)
def test_a_learned_retry_keeps_every_guard_rail_and_is_deterministic(case: dict) -> None:  # type: ignore[type-arg]
    strategy = BOOK.get(case["strategy_id"])
    policy = strategy.policy("SOFT_DECLINE")
    assert isinstance(policy, RetryPolicy)
    first, second = plan(**case), plan(**case)
    assert first == second
    if case["visa_category"] in (1, 3) or case["advice"] in ("03", "21"):
        assert first.action != "retry"  # never after a do-not-retry (or fix-the-data) advice
    if first.action != "retry":
        return
    assert first.at is not None and first.at > case["now"]
    assert first.at <= T0 + timedelta(days=policy.max_window_days)
    assert case["attempts"] < policy.max_attempts and first.attempt_no <= policy.max_attempts
    history = [*case["history"], case["now"]]
    verdict = check_network_budget(history, case["brand"], case["visa_category"], case["advice"], first.at,
                                   NetworkLimits())
    assert verdict.allowed, verdict.reason
    hours = strategy.business_hours
    assert hours is not None
    local = first.at.astimezone(default_countries().of(case["country"]).zone())
    assert weekday_name(local.date()) in hours.weekdays and hours.start <= local.time() < hours.end
    assert "expected success for" in first.explanation and "best of the next" in first.explanation
