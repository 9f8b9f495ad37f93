"""The outcome models, the population and the CLI (in-process, no sockets: these could live in tests/unit)."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from simulator.catalog import UnknownDeclineCodeError, declines
from simulator.cli import main
from simulator.core import Simulator, SimulatorSettings
from simulator.errors import StripeApiError
from simulator.models import DEFAULT_MODEL_FILE, ConfigModel, ModelConfigError, load_config, load_model
from simulator.outcomes import CardFacts, ChargeContext, InvoiceFacts


def context(
    previous: str | None,
    *,
    day: int = 8,
    days: float | None = 5.0,
    attempt: int = 2,
    hour: int = 14,
    brand: str = "visa",
    seed: int = 0,
) -> ChargeContext:
    return ChargeContext(
        card=CardFacts(id="pm_1", brand=brand, funding="debit", country="US", fingerprint="fp_1"),
        invoice=InvoiceFacts(id="in_1", customer="cus_1", amount=2900, currency="usd"),
        attempt=attempt,
        days_since_first_failure=days,
        previous_decline=previous,
        day_of_month=day,
        local_hour=hour,
        rng=random.Random(seed),
    )


@pytest.fixture(scope="module")
def default() -> ConfigModel:
    return ConfigModel(load_config(DEFAULT_MODEL_FILE))


@pytest.mark.parametrize("code", ["lost_card", "stolen_card", "expired_card", "fraudulent"])
def test_a_hard_decline_never_recovers_on_the_same_card(default: ConfigModel, code: str) -> None:
    outcomes = [default.decide(context(code, day=1, days=6, seed=seed)) for seed in range(300)]
    assert default.recovery_probability(context(code), code) == 0.0
    assert not any(o.succeeded for o in outcomes)


def test_insufficient_funds_recovers_more_just_after_a_payday(default: ConfigModel) -> None:
    payday = default.recovery_probability(context("insufficient_funds", day=15), "insufficient_funds")
    mid_month = default.recovery_probability(context("insufficient_funds", day=9), "insufficient_funds")
    assert payday > 1.5 * mid_month > 0


def test_recovery_peaks_between_two_and_twelve_days_after_the_first_failure(default: ConfigModel) -> None:
    by_days = [default.recovery_probability(context("do_not_honor", days=d), "do_not_honor") for d in (0, 5, 25)]
    assert by_days[1] > by_days[0] and by_days[1] > by_days[2]


def test_the_default_model_declines_about_a_tenth_of_renewals_mostly_generically() -> None:
    sim = Simulator(SimulatorSettings(seed=3, customers=1500))
    sim.advance(sim.now() + timedelta(days=31))
    first = [e for e in sim.ledger_entries() if e.attempt == 1]
    declined = Counter(e.decline_code for e in first if e.outcome == "declined")
    assert 0.05 < sum(declined.values()) / len(first) < 0.15
    assert declined.most_common(1)[0][0] == "generic_decline"
    assert any(e.network_advice_code for e in first if e.outcome == "declined")
    assert sim.double_charges() == {}


def test_a_new_card_gets_a_fresh_chance_after_a_hard_decline() -> None:
    sim = Simulator(SimulatorSettings(seed=1, model="always_succeed"))
    customer = sim.billing.create_customer({})
    lost = sim.billing.attach_payment_method("pm_card_chargeDeclinedLostCard", customer.id)
    invoice = sim.billing.create_invoice({"customer": customer.id, "amount": "1000"})
    with pytest.raises(StripeApiError) as caught:
        sim.charging.pay(invoice.id, {"payment_method": lost.id})
    assert caught.value.status == 402 and caught.value.error["decline_code"] == "lost_card"
    fresh = sim.billing.attach_payment_method("pm_card_visa", customer.id)
    assert sim.charging.pay(invoice.id, {"payment_method": fresh.id}).status == "paid"


def test_a_card_can_be_forced_to_decline_with_any_known_code() -> None:
    sim = Simulator(SimulatorSettings(seed=1, customers=1, model="always_succeed"))
    customer = next(iter(sim.state.customers.values()))
    assert customer.default_payment_method is not None
    sim.force_card(customer.default_payment_method, "card_velocity_exceeded")
    sim.advance(sim.now() + timedelta(days=31))
    assert [e.decline_code for e in sim.ledger_entries()] == ["card_velocity_exceeded"]
    with pytest.raises(UnknownDeclineCodeError):
        sim.force_card(customer.default_payment_method, "no_such_code")


def test_always_decline_uses_the_catalog_and_adds_mastercard_advice(default: ConfigModel) -> None:
    outcome = load_model("always_decline:insufficient_funds").decide(context(None, brand="mastercard"))
    assert (outcome.decline_code, outcome.network_decline_code, outcome.network_advice_code) == (
        "insufficient_funds",
        "51",
        "02",
    )


def test_a_model_file_with_an_unknown_code_names_the_file_and_field(tmp_path: Path) -> None:
    raw = json.loads(DEFAULT_MODEL_FILE.read_text())
    raw["recovery"]["insufficient_fund"] = 0.5
    path = tmp_path / "model.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ModelConfigError, match=r"model\.json: recovery.*insufficient_fund"):
        load_model(str(path))


def test_a_model_file_is_chosen_by_path(tmp_path: Path) -> None:
    raw = json.loads(DEFAULT_MODEL_FILE.read_text()) | {"id": "tuned", "version": 3}
    path = tmp_path / "tuned.json"
    path.write_text(json.dumps(raw))
    assert load_model(str(path)).name == "tuned@3"


def test_every_default_mix_code_is_in_the_catalog() -> None:
    raw = json.loads(DEFAULT_MODEL_FILE.read_text())
    codes = {code for mix in raw["decline_mix"].values() for code in mix}
    assert codes <= set(declines())


def test_an_unknown_model_name_is_refused() -> None:
    with pytest.raises(ModelConfigError, match="unknown outcome model"):
        load_model("optimistic")


def test_the_cli_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    assert "--webhook-secret" in capsys.readouterr().out


def test_the_cli_refuses_an_unknown_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model", "always_decline:not_a_code"]) == 2
    assert "not_a_code" in capsys.readouterr().out
