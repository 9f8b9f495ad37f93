"""The population's `advance` scans once per call and then follows what each due time touched; it must run the
same renewals and Smart Retries, in the same order, as a full rescan after every due time (the reference below,
the algorithm it replaced). Compared on the whole ledger and event stream of seeded runs, with steps of an hour
and of a few days (a step that spans a renewal and its Smart Retries)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from simulator.core import Simulator, SimulatorSettings
from simulator.population import Population
from simulator.records import Invoice, Subscription
from simulator.state import BILLABLE


def _billable(population: Population) -> list[Subscription]:
    return [s for s in population.billing.state.subscriptions.values() if s.status in BILLABLE]


def _retrying(population: Population) -> list[Invoice]:
    return [i for i in population.billing.state.invoices.values() if i.status == "open" and i.next_payment_attempt]


def _scan_next_due(population: Population) -> datetime | None:
    times = [s.current_period_end for s in _billable(population)]
    times += [i.next_payment_attempt for i in _retrying(population) if i.next_payment_attempt is not None]
    return min(times, default=None)


def _rescan_advance(population: Population, to: datetime) -> int:
    """The reference: after every due time, look at the whole population again."""
    clock = population.billing.clock
    ran = 0
    while (due := _scan_next_due(population)) is not None and due <= to:
        clock.set(due)  # type: ignore[attr-defined]
        subs = sorted((s for s in _billable(population) if s.current_period_end <= due), key=lambda s: s.id)
        retries = sorted((i for i in _retrying(population)
                          if i.next_payment_attempt and i.next_payment_attempt <= due), key=lambda i: i.id)
        for sub in subs:
            population.charging.renew(sub)
        for inv in retries:
            population.charging.smart_retry(inv)
        ran += len(subs) + len(retries)
    clock.set(to)  # type: ignore[attr-defined]
    return ran


Run = tuple[list[int], list[dict[str, object]], list[str]]  # (ran per step, ledger, event ids)


def _run(step: timedelta, days: int, seed: int, smart: bool, reference: bool) -> Run:
    sim = Simulator(SimulatorSettings(seed=seed, customers=300, auto_deliver=False, smart_retries=smart))
    start, ran = sim.now(), []
    at = start
    while at < start + timedelta(days=days):
        at += step
        with sim.lock:
            ran.append(_rescan_advance(sim.population, at) if reference else sim.population.advance(at))
        assert sim.population.next_due() == _scan_next_due(sim.population)
    state = sim.state
    for sub_id in state.subscriptions:  # the per-subscription index holds what a scan of every invoice finds
        assert [i.id for i in state.invoices_of(sub_id)] == [
            i.id for i in state.invoices.values() if i.subscription == sub_id]
    ledger = [e.model_dump() for e in sim.ledger_entries()]
    return ran, ledger, [f"{e['type']}:{e['id']}" for e in sim.events]


@pytest.mark.parametrize(("step", "days", "seed", "smart"), [
    (timedelta(hours=1), 45, 7, False),  # the demo's step, the platform retrying
    (timedelta(hours=1), 45, 7, True),
    (timedelta(days=3), 70, 11, True),
    (timedelta(days=40), 80, 3, True),  # one step holds renewals, their Smart Retries and the next renewals
])
def test_advance_runs_what_a_full_rescan_runs_in_the_same_order(
    step: timedelta, days: int, seed: int, smart: bool
) -> None:
    ran, ledger, events = _run(step, days, seed, smart, reference=False)
    expected_ran, expected_ledger, expected_events = _run(step, days, seed, smart, reference=True)
    assert sum(ran) > 300 and any(e["outcome"] == "declined" for e in ledger)  # renewals and declines happened
    assert not smart or any(e["source"] == "smart_retry" for e in ledger)
    assert ran == expected_ran
    assert ledger == expected_ledger
    assert events == expected_events
