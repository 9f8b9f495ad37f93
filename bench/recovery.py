"""Recovery effectiveness: payrisk's decision core against fixed schedules, on each shipped outcome model.

    .venv/bin/python -m bench.recovery --customers 3000 --days 60 --seed 7 [--models default,late_peak,pay_cycle]

In process and deterministic: the pure decision core (`actors/domain/decide.py` with the strategy planner) runs
on a simulated clock; every charge is decided by the outcome model with paired luck (`bench/recovery_world.py`);
dunning emails reach simulated customers who may update their card or pay the hosted invoice
(`simulator/email_reaction.py`). The learned timing is first fitted on the ledger of a history run (another seed,
same policy, prior only), as a tenant's would be. Baselines: Stripe's fixed 8 tries in 14 days, Kill Bill's
days 8/16/24 (no emails). Prints one Markdown table per model.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from actors.domain.case import empty_state
from actors.domain.decide import decide_attempt_result, decide_inbound, decide_timer
from actors.domain.decisions import Context, Decision
from actors.domain.strategy_planner import StrategyPlanner
from actors.planning import classifier_for
from bench.recovery_world import (
    EIGHT_IN_FOURTEEN,
    KILL_BILL,
    Failure,
    Tally,
    World,
    decline_json,
    fingerprint,
    run_fixed,
)
from payrisk.demo.network import AttemptRow, violations
from simulator.email_reaction import EmailSeen, load_reaction, react, reaction_rng
from simulator.models import MODELS
from strategies.calendar import default_countries
from strategies.holdout import Holdouts, default_holdouts
from strategies.learned import Observation, Slot, TimingModel, default_prior, fit, prior_model

TENANT = "bench"
AFTER_END = timedelta(days=30)  # cases that opened before the end may finish within this much more time


@dataclass(slots=True)
class _Customer:
    """One customer's run through the core: state, pending events, cards, ledger."""

    state: dict[str, Any]
    failures: dict[str, Failure]
    queue: list[tuple[datetime, int, str, Any]] = field(default_factory=list)
    timers: dict[str, tuple[datetime, dict[str, Any]]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)  # invoice → charges so far (the renewal included)
    emails: dict[str, int] = field(default_factory=dict)
    card: str = "card0"
    last_decline: dict[tuple[str, str], str] = field(default_factory=dict)  # (invoice, card) → decline code
    history: dict[str, list[datetime]] = field(default_factory=dict)


class PayriskRun:
    """The platform's pure core, driven failure by failure; `emails=False` ignores every customer reaction."""

    def __init__(self, world: World, planner: StrategyPlanner, *, emails: bool = True, name: str = "payrisk") -> None:
        self.world, self.planner, self.emails = world, planner, emails
        self.tally = Tally(name)
        self.observations: list[Observation] = []
        self.reaction = load_reaction()
        self._seq = itertools.count()

    def run(self, failures: Iterable[Failure]) -> Tally:
        by_customer: dict[str, list[Failure]] = {}
        for f in failures:
            by_customer.setdefault(f.customer.id, []).append(f)
        for items in by_customer.values():
            self._customer(items)
        return self.tally

    def _customer(self, items: list[Failure]) -> None:
        c = items[0].customer
        state = {**empty_state(TENANT, c.id), "customer_since": c.since.isoformat()}
        me = _Customer(state, {f.invoice: f for f in items})
        for f in items:
            self._push(me, f.at, "fail", f)
        while me.queue:
            at, _, kind, data = heapq.heappop(me.queue)
            if at > self.world.end + AFTER_END:
                break
            getattr(self, f"_on_{kind}")(me, at, data)

    def _push(self, me: _Customer, at: datetime, kind: str, data: Any) -> None:
        heapq.heappush(me.queue, (at, next(self._seq), kind, data))

    def _ctx(self, me: _Customer, now: datetime) -> Context:
        return Context(now=now, classify=classifier_for(TENANT), planner=self.planner,
                       card_history={fp: tuple(times) for fp, times in me.history.items()})

    # -- what happens ---------------------------------------------------------------------------------------------
    def _on_fail(self, me: _Customer, at: datetime, f: Failure) -> None:
        c = f.customer
        self.tally.failed, self.tally.failed_amount = self.tally.failed + 1, self.tally.failed_amount + c.price
        me.attempts[f.invoice] = 1
        me.last_decline[(f.invoice, "card0")] = f.code
        self._attempt_row(me, f, "card0", at, declined=True)
        event = {"kind": "payment_failed", "provider": "stripe", "provider_event_id": f"evt_{f.invoice}",
                 "provider_event_type": "invoice.payment_failed", "occurred_at": at.isoformat(), "customer_id": c.id,
                 "invoice_id": f.invoice, "amount_due": c.price, "currency": c.currency,
                 "customer_email": f"{c.id}@example.test", "payment_method_id": "pm_card0", "subscription_id": None,
                 "decline": decline_json(f.outcome, c, "card0")}
        self._apply(me, at, decide_inbound(me.state, event, self._ctx(me, at)))

    def _on_timer(self, me: _Customer, at: datetime, data: tuple[str, dict[str, Any]]) -> None:
        invoice, payload = data
        if me.timers.get(invoice) != (at, payload):
            return  # replaced or cancelled since
        del me.timers[invoice]
        self._apply(me, at, decide_timer(me.state, invoice, payload, self._ctx(me, at)))

    def _on_update_card(self, me: _Customer, at: datetime, invoice: str) -> None:
        me.card = f"card{len({card for _, card in me.last_decline}) + 1}"
        event = {"kind": "payment_method_updated", "provider": "stripe", "provider_event_id": f"evt_pm_{me.card}",
                 "provider_event_type": "payment_method.attached", "occurred_at": at.isoformat(),
                 "customer_id": me.state["customer_id"], "payment_method_id": f"pm_{me.card}"}
        self.tally.customer_actions += 1
        self._apply(me, at, decide_inbound(me.state, event, self._ctx(me, at)))

    def _on_pay_invoice(self, me: _Customer, at: datetime, invoice: str) -> None:
        case = me.state["cases"].get(invoice)
        if case is None or case["state"] in ("recovered", "closed"):
            return
        f = me.failures[invoice]
        me.attempts[invoice] += 1
        outcome = self.world.charge(f.customer, invoice, f.ordinal, me.attempts[invoice], at, f.at, None, "hosted")
        self.tally.customer_actions += 1
        if outcome.succeeded:
            event = {"kind": "payment_succeeded", "provider": "stripe", "provider_event_id": f"evt_paid_{invoice}",
                     "provider_event_type": "invoice.paid", "occurred_at": at.isoformat(),
                     "customer_id": me.state["customer_id"], "invoice_id": invoice, "amount_paid": f.customer.price}
            self._apply(me, at, decide_inbound(me.state, event, self._ctx(me, at)))

    # -- effects of a decision -----------------------------------------------------------------------------------
    def _apply(self, me: _Customer, now: datetime, d: Decision) -> None:
        me.state = d.state
        for event_type, payload in d.events:
            if event_type == "InvoiceRecovered":
                self.tally.recovered += 1
                self.tally.recovered_amount += me.failures[payload["invoice_id"]].customer.price
        for timer in d.timers:
            invoice = timer.key.split(":", 1)[1]
            if timer.due_at is None:
                me.timers.pop(invoice, None)
            else:
                me.timers[invoice] = (timer.due_at, timer.payload)
                self._push(me, timer.due_at, "timer", (invoice, timer.payload))
        for box in d.outbox:
            if box.topic == "email" and box.payload.get("template") != "recovered":
                self._email(me, now, box.payload)
        for charge in d.charges:
            self._charge(me, now, charge.invoice_id, charge.attempt_no, charge.payment_method_id)

    def _charge(self, me: _Customer, now: datetime, invoice: str, attempt_no: int, pm: str | None) -> None:
        f = me.failures[invoice]
        card = (pm or f"pm_{me.card}").removeprefix("pm_")
        me.attempts[invoice] += 1
        previous = me.last_decline.get((invoice, card))
        outcome = self.world.charge(f.customer, invoice, f.ordinal, me.attempts[invoice], now, f.at, previous, card)
        self.tally.retries += 1
        self.tally.retries_on_hard += card == "card0" and f.stops
        self._attempt_row(me, f, card, now, declined=not outcome.succeeded)
        if card == "card0":
            self._observe(f, now, me.attempts[invoice] - 1, outcome.succeeded)
        if not outcome.succeeded:
            me.last_decline[(invoice, card)] = outcome.decline_code or outcome.code or "generic_decline"
        result = "succeeded" if outcome.succeeded else "failed"
        decline = None if outcome.succeeded else decline_json(outcome, f.customer, card)
        self._apply(me, now, decide_attempt_result(me.state, invoice, attempt_no, result, decline, self._ctx(me, now)))

    def _email(self, me: _Customer, now: datetime, payload: dict[str, Any]) -> None:
        self.tally.emails += 1
        invoice, template = payload["invoice_id"], payload["template"]
        f = me.failures[invoice]
        me.emails[invoice] = me.emails.get(invoice, 0) + 1
        if not self.emails:
            return
        local = now + timedelta(hours=f.customer.utc_offset)
        seen = EmailSeen(template, local.hour, (now - f.at).total_seconds() / 86400, me.emails[invoice], f.stops,
                         f.customer.price)
        reaction = react(self.reaction, seen,
                         reaction_rng(self.world.seed, f.customer.id, f.ordinal, template, me.emails[invoice]))
        if reaction is not None:
            self._push(me, now + reaction.after, reaction.action, invoice)

    def _attempt_row(self, me: _Customer, f: Failure, card: str, at: datetime, *, declined: bool) -> None:
        fp = fingerprint(f.customer, card)
        me.history.setdefault(fp, []).append(at)
        self.tally.attempts.append(AttemptRow(card=fp, brand=f.customer.brand, at=at, declined=declined))

    def _observe(self, f: Failure, at: datetime, made: int, succeeded: bool) -> None:
        local = at.astimezone(default_countries().of(f.customer.country).zone())
        slot = Slot(f.code, None, (at - f.at).total_seconds() / 86400, local.hour, local.day, made)
        self.observations.append(Observation(slot, succeeded))


def planner(timing: TimingModel | None, holdouts: Holdouts | None = None) -> StrategyPlanner:
    none = default_holdouts().model_copy(update={"default_share": 0.0})
    return StrategyPlanner(timing=timing, holdouts=holdouts or none)


def learned_model(model: str, seed: int, customers: int, days: int) -> TimingModel:
    """The tenant's history: the same policy on another population, its ledger fitted into the timing model."""
    history = World(model, seed + 1000, customers, days)
    run = PayriskRun(history, planner(prior_model()), emails=True)
    run.run(history.failures())
    return fit(default_prior(), run.observations)


def evaluate(model: str, seed: int, customers: int, days: int) -> list[Tally]:
    world = World(model, seed, customers, days)
    failures = world.failures()
    timing = learned_model(model, seed, customers, days)
    return [
        PayriskRun(world, planner(timing)).run(failures),
        PayriskRun(world, planner(timing), emails=False, name="payrisk, emails not credited").run(failures),
        run_fixed(world, failures, "fixed 8 tries in 14 days", EIGHT_IN_FOURTEEN),
        run_fixed(world, failures, "Kill Bill days 8/16/24", KILL_BILL),
    ]


def table(model: str, rows: list[Tally]) -> str:
    lines = [f"**{model}** ({rows[0].failed:,} failed renewals, {rows[0].failed_amount / 100:,.0f} at risk)", "",
             "| approach | revenue recovered | invoices recovered | retries | retries on hard declines "
             "| network violations | emails | customer actions |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for t in rows:
        broken = sum(violations(t.attempts).values())
        lines.append(f"| {t.name} | {t.rate:.1%} | {t.recovered:,} | {t.retries:,} | {t.retries_on_hard:,} "
                     f"| {broken} | {t.emails:,} | {t.customer_actions:,} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    for model in args.models.split(","):
        print(table(model, evaluate(model, args.seed, args.customers, args.days)), "\n", flush=True)


if __name__ == "__main__":
    main()
