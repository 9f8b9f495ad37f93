"""The Adyen and Braintree dialects decide charges with the simulator's outcome model and write its ledger, as the
Stripe-compatible simulator does: a seeded population, the same decline mix and recovery behaviour, the same
`LedgerEntry` rows, the same replay from a seed — so one evaluation reads every provider."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from simulator.adyen import REFUSALS, AdyenDialect
from simulator.braintree import PROCESSOR, BraintreeDialect
from simulator.catalog import is_hard
from simulator.dialect import PaymentBook
from simulator.ledger import LedgerEntry

T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)
N = 400


def adyen_run(seed: int) -> tuple[AdyenDialect, list[LedgerEntry]]:
    now = [T0]
    adyen = AdyenDialect("k", "M", "AB" * 32, book=PaymentBook("default", seed=seed, clock=lambda: now[0]))
    for card in adyen.book.populate(N, "shopper"):
        adyen.renew(f"inv-{card.customer}", card.id, {"value": 2900, "currency": adyen.book.currency_of(card)})
    now[0] = T0 + timedelta(days=3)  # one retry of every declined invoice, on the same card
    for entry in [e for e in adyen.ledger if e.outcome == "declined"]:
        adyen.pay(entry.invoice, entry.payment_method, {"value": 2900, "currency": entry.currency}, source="api",
                  key=f"payrisk:default:{entry.invoice}:1", metadata={})
    return adyen, adyen.ledger


def braintree_run(seed: int) -> tuple[BraintreeDialect, list[LedgerEntry]]:
    now = [T0]
    bt = BraintreeDialect("m", "pub", "priv", book=PaymentBook("default", seed=seed, clock=lambda: now[0]))
    for card in bt.book.populate(N, "cust"):
        bt.subscribe(f"sub-{card.customer}", card.id, 2900, bt.book.currency_of(card))
        bt.bill(f"sub-{card.customer}")
    now[0] = T0 + timedelta(days=3)
    for sub in [s for s in bt.subscriptions.values() if s.status == "Past Due"]:
        bt.bill(sub.id)  # Braintree's own retry
    return bt, bt.book.ledger.entries()


@pytest.mark.parametrize("run", [adyen_run, braintree_run], ids=["adyen", "braintree"])
def test_the_outcome_model_decides_with_a_realistic_decline_mix_and_recovery(run: Any) -> None:
    _, ledger = run(seed=11)
    first = [e for e in ledger if e.attempt == 1]
    retries = [e for e in ledger if e.attempt == 2]
    assert len(first) == N and all(isinstance(e, LedgerEntry) for e in ledger)
    declined = [e for e in first if e.outcome == "declined"]
    assert 0.05 < len(declined) / N < 0.35  # the default model's first-attempt decline rates by funding
    assert len(Counter(e.decline_code for e in declined)) >= 3  # a mix of codes, not one forced answer
    assert len(retries) == len(declined)
    recovered = [e for e in retries if e.outcome == "succeeded"]
    assert 0 < len(recovered) < len(retries)  # some recover on a later attempt, not all
    hard = {e.invoice for e in declined if e.decline_code and is_hard(e.decline_code)}
    assert not {e.invoice for e in recovered} & hard  # a hard decline never recovers on the same card


@pytest.mark.parametrize("run", [adyen_run, braintree_run], ids=["adyen", "braintree"])
def test_a_seed_replays_exactly_and_another_seed_differs(run: Any) -> None:
    def outcomes(seed: int) -> list[tuple[Any, ...]]:
        return [(e.invoice, e.attempt, e.outcome, e.decline_code) for e in run(seed)[1]]

    assert outcomes(5) == outcomes(5)
    assert outcomes(5) != outcomes(6)


def test_every_model_decline_code_has_a_provider_code() -> None:
    from simulator.catalog import declines

    assert set(declines()) - set(REFUSALS) == set()
    assert set(declines()) - set(PROCESSOR) == {"fraudulent"}  # Braintree: a gateway rejection, not a processor code


def test_the_providers_codes_travel_in_their_own_vocabulary() -> None:
    adyen, _ = adyen_run(seed=11)
    refused = [orjson_item(b) for b in adyen.outbox]
    refusals = [i for i in refused if i["success"] == "false"]
    assert refusals and all(i["additionalData"]["refusalReasonCode"] in {c for c, _ in REFUSALS.values()}
                            for i in refusals)
    bt, _ = braintree_run(seed=11)
    codes = {t.get("processor_response_code") for t in bt.transactions.values() if t["status"] != "submitted_for_"
             "settlement"}
    assert codes and codes <= {c for c, _, _ in PROCESSOR.values()} | {None}


def orjson_item(body: bytes) -> dict[str, Any]:
    import orjson

    item: dict[str, Any] = orjson.loads(body)["notificationItems"][0]["NotificationRequestItem"]
    return item
