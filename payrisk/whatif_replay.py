"""The replay behind `payrisk whatif` (pure: the recorded events and ledger in, totals out).

Every invoice whose first failure was classified in ``[--from, --to)`` is replayed through the pure decision core
(`decide_timer` / `decide_attempt_result` with a `StrategyPlanner` whose book holds the candidate) from the
customer's state just before that classification. A retry the candidate makes at the very time of the recorded
one (every earlier one matching too) has the recorded outcome; any other retry has the success chance of an
outcome model fitted from the tenant's own ledger (attempt outcomes by decline reason, days since the failure,
local hour and attempts made, shrunk toward the published prior: `strategies.learned.fit`). Results are
expectations: recovered revenue, retries and emails weighted by the chance the case is still open. A customer's
own action (a new card, paying the invoice) is taken as recorded: it ends the replayed path, and what followed it
counts for the candidate while its case would still have been open. The shipped policy reproduces the record.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from actors.domain.case import empty_state, evolve
from actors.domain.decide import decide_attempt_result, decide_timer
from actors.domain.decisions import Context, Decision, Json
from actors.domain.strategy_planner import StrategyPlanner
from actors.timing import outcome_model
from store.history import FirstFailure, LedgerAttempt
from strategies.calendar import default_countries
from strategies.learned import Slot, TimingModel
from strategies.loader import StrategyBook

HORIZON = timedelta(days=60)  # a replayed case follows its timers this long after its first failure
_NEXT = ("retry", "deadline", "recheck")
Event = tuple[str, Json]


@dataclass(slots=True)
class Totals:
    cases: int = 0
    recovered: float = 0.0  # invoices (expected, for the candidate)
    revenue: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # currency → minor units
    retries: float = 0.0
    emails: float = 0.0

    def as_json(self) -> Json:
        return {"cases": self.cases, "recovered_invoices": round(self.recovered, 2), "retries": round(self.retries, 2),
                "emails": round(self.emails, 2), "revenue": {c: round(v) for c, v in sorted(self.revenue.items())}}


@dataclass(slots=True)
class RecordedAttempt:
    at: datetime  # when it started: the scheduler fires a due timer at its next pass, so maybe after `planned_at`
    planned_at: datetime | None = None
    succeeded: bool | None = None
    decline: Json = field(default_factory=dict)
    result_at: datetime | None = None
    classification: Json | None = None  # what the decline that answered it was classified as


@dataclass(frozen=True, slots=True)
class Recorded:
    """What actually happened to one invoice after its first classified failure. Once the customer acted (a new
    card, paying the invoice), what followed is the *tail*: the replay takes it as it happened."""

    starts: tuple[RecordedAttempt, ...]
    emails: int
    recovered: int
    via_customer_at: datetime | None = None
    tail_retries: int = 0
    tail_emails: int = 0


# -- reading the record -------------------------------------------------------------------------------------------
def _at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def cases_in(events: Sequence[Event], since: datetime, until: datetime) -> list[tuple[int, str]]:
    """(index of the first FailureClassified, invoice) for each invoice first classified in the period."""
    seen: set[str] = set()
    found = []
    for index, (kind, payload) in enumerate(events):
        invoice = str(payload.get("invoice_id"))
        if kind == "FailureClassified" and invoice not in seen:
            seen.add(invoice)
            at = _at(payload.get("at"))
            if at is not None and since <= at < until:
                found.append((index, invoice))
    return found


def recorded(events: Sequence[Event], start: int, invoice: str) -> Recorded:
    starts: list[RecordedAttempt] = []
    counts = {"emails": 0, "tail_retries": 0, "tail_emails": 0, "recovered": 0}
    customer_at: datetime | None = None
    planned: datetime | None = None
    for kind, p in events[start:]:
        mine, tail = p.get("invoice_id") == invoice, customer_at is not None
        if kind == "RetryScheduled" and mine:
            planned = _at(p.get("at"))
        elif kind in _ATTEMPT_EVENTS and mine:
            counts["tail_retries"] += tail and kind == "AttemptStarted"
            if not tail:
                _attempt_event(starts, kind, p, planned)
        elif kind == "NotificationRequested" and mine and _is_dunning_email(p):
            counts["tail_emails" if tail else "emails"] += 1
        elif kind == "InvoiceRecovered" and mine:
            counts["recovered"] = int(p.get("amount") or 0)
            customer_at = customer_at or (_at(p.get("at")) if p.get("via") != "retry" else None)
        elif kind == "PaymentMethodUpdated" and customer_at is None:
            customer_at = _at(p.get("at"))
    return Recorded(tuple(starts), via_customer_at=customer_at, **counts)


_ATTEMPT_EVENTS = ("AttemptStarted", "AttemptSucceeded", "AttemptFailed", "FailureClassified")
#: events whose `at` is when something happened (a plan's `at` is when it is due)
_HAPPENED = frozenset({"PaymentFailed", "FailureClassified", "AttemptStarted", "InvoiceRecovered", "DetailsFetched"})


def _attempt_event(starts: list[RecordedAttempt], kind: str, p: Json, planned: datetime | None) -> None:
    """An attempt starts, is answered, and its decline classified (the classification the next plan used)."""
    if kind == "AttemptStarted":
        starts.append(RecordedAttempt(_at(p["at"]) or datetime.min.replace(tzinfo=UTC), planned))
    elif kind in ("AttemptSucceeded", "AttemptFailed") and starts:
        starts[-1].succeeded, starts[-1].decline = kind == "AttemptSucceeded", p.get("decline") or {}
    elif kind == "FailureClassified" and starts and starts[-1].result_at is None:
        starts[-1].result_at, starts[-1].classification = _at(p.get("at")), p.get("classification")


def record_end(streams: Iterable[Sequence[Event]], default: datetime) -> datetime:
    """When the record stops: the last thing that happened in it (a case's later timers never fired)."""
    times = [_at(p.get("at")) for stream in streams for kind, p in stream if kind in _HAPPENED]
    return max((t for t in times if t is not None), default=default)


def _is_dunning_email(payload: Json) -> bool:
    return payload.get("topic") == "email" and payload.get("template") != "recovered"


# -- replaying one case --------------------------------------------------------------------------------------------
@dataclass(slots=True)
class CaseReplay:
    planner: StrategyPlanner
    model: TimingModel
    cards: dict[str, list[LedgerAttempt]]  # fingerprint → ledger rows
    state: Json
    invoice: str
    record: Recorded
    classification: Json
    provider: str = "stripe"
    ours: list[datetime] = field(default_factory=list)
    survival: float = 1.0
    differs: bool = False
    out: Totals = field(default_factory=Totals)

    def run(self, classified_at: datetime, record_end: datetime) -> None:
        """Follow the case's timers from its classification to the end of the record (or `HORIZON` after)."""
        decision = decide_timer(self.state, self.invoice, {"action": "classify"}, self._ctx(classified_at))
        end = min(classified_at + HORIZON, record_end)
        while (timer := self._apply(decision)) is not None and timer[0] <= end and self.survival > 0:
            at, payload = timer
            customer = self.record.via_customer_at
            if customer is not None and at >= customer:
                break
            at = self._when(at) if payload.get("action") == "retry" else at
            decision = decide_timer(self.state, self.invoice, payload, self._ctx(at))
            if decision.charges:
                decision = self._attempt(at, decision)
        self._customer_credit()

    def _when(self, due: datetime) -> datetime:
        """A retry planned when the recorded one was ran when the record says it started (the scheduler's pass)."""
        n = len(self.ours)
        mine = self.record.starts[n] if not self.differs and n < len(self.record.starts) else None
        if mine is not None and mine.planned_at is not None and abs((mine.planned_at - due).total_seconds()) < 1:
            return mine.at
        return due

    def _attempt(self, at: datetime, started: Decision) -> Decision:
        self.state = started.state
        self.ours.append(at)
        n = len(self.ours)
        mine = self.record.starts[n - 1] if not self.differs and n <= len(self.record.starts) else None
        if mine is None or abs((mine.at - at).total_seconds()) >= 1 or mine.succeeded is None:
            self.differs, mine = True, None
        p = (1.0 if mine.succeeded else 0.0) if mine is not None else self._chance(at)
        case = self.state["cases"][self.invoice]
        self.out.retries += self.survival
        self._recover(case, self.survival * p)
        self.survival *= 1 - p
        decline = mine.decline if mine is not None and mine.decline else dict(case.get("card") or {})
        result_at = mine.result_at if mine is not None and mine.result_at else at + timedelta(seconds=5)
        if mine is not None and mine.classification:
            self.classification = mine.classification
        return decide_attempt_result(self.state, self.invoice, started.charges[0].attempt_no, "failed", decline,
                                     self._ctx(result_at))

    def _chance(self, at: datetime) -> float:
        case = self.state["cases"][self.invoice]
        first = _at(case.get("first_failed_at")) or at
        local = at.astimezone(default_countries().of((case.get("card") or {}).get("card_country")).zone())
        made = int(case.get("provider_failures") or 1) + len(self.ours) - 1
        slot = Slot(str(self.classification.get("reason")), None, (at - first).total_seconds() / 86400, local.hour,
                    local.day, made)
        return self.model.probability(slot)

    def _recover(self, case: Json, chance: float) -> None:
        if chance <= 0:
            return
        self.out.recovered += chance
        self.out.revenue[str(case.get("currency") or "usd")] += chance * int(case.get("amount_due") or 0)

    def _customer_credit(self) -> None:
        """The customer's own action and what followed it, as recorded, while the case would still be open."""
        if self.record.via_customer_at is None:
            return
        self.out.retries += self.survival * self.record.tail_retries
        self.out.emails += self.survival * self.record.tail_emails
        if self.record.recovered:
            case = self.state["cases"][self.invoice]
            self._recover({**case, "amount_due": self.record.recovered}, self.survival)
            self.survival = 0.0

    def _apply(self, decision: Decision) -> tuple[datetime, Json] | None:
        self.state = decision.state
        self.out.emails += self.survival * sum(
            1 for box in decision.outbox if box.topic == "email" and box.payload.get("template") != "recovered")
        timers = [t for t in decision.timers if t.payload.get("action") in _NEXT and t.due_at is not None]
        return (timers[-1].due_at, timers[-1].payload) if timers else None  # type: ignore[return-value]

    def _ctx(self, now: datetime) -> Context:
        since = now - timedelta(days=30)
        fingerprint = (self.state["cases"][self.invoice].get("card") or {}).get("card_fingerprint", "")
        history = [r.intended_at for r in self.cards.get(fingerprint, [])
                   if since <= r.intended_at <= now and not (r.invoice_id == self.invoice and r.origin == "payrisk")]
        history = sorted([*history, *(t for t in self.ours if t <= now)])
        return Context(now=now, classify=lambda _provider, _decline: self.classification, planner=self.planner,
                       provider=self.provider, card_history={fingerprint: tuple(history)} if fingerprint else {})


# -- the whole replay ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class History:
    tenant: str
    streams: dict[str, list[Event]]  # customer id → its events
    rows: list[LedgerAttempt]
    failures: list[FirstFailure]


def replay(history: History, book: StrategyBook, since: datetime, until: datetime) -> Json:
    """Actual vs candidate totals, and how many cases the candidate decided differently (pure)."""
    planner, model = StrategyPlanner(book=book), outcome_model(history.rows, history.failures)
    cards: dict[str, list[LedgerAttempt]] = defaultdict(list)
    for row in history.rows:
        cards[row.card_fingerprint or ""].append(row)
    actual, candidate, differing = Totals(), Totals(), []
    end = record_end(history.streams.values(), until)
    for customer, stream in sorted(history.streams.items()):
        for index, invoice in cases_in(stream, since, until):
            record = recorded(stream, index, invoice)
            state = empty_state(history.tenant, customer)
            for kind, payload in stream[:index]:
                state = evolve(state, kind, payload)
            classified = stream[index][1]
            one = CaseReplay(planner, model, cards, state, invoice, record, classified["classification"],
                             str(classified.get("provider") or "stripe"))
            one.run(_at(classified["at"]) or since, end)
            case = one.state["cases"][invoice]
            _add(actual, record, case)
            _merge(candidate, one.out)
            if one.differs or len(one.ours) != len(record.starts):
                differing.append(invoice)
    return {"actual": actual.as_json(), "candidate": candidate.as_json(), "differing_cases": len(differing),
            "differing_invoices": differing}


def _add(totals: Totals, record: Recorded, case: Json) -> None:
    totals.cases += 1
    totals.retries += len(record.starts) + record.tail_retries
    totals.emails += record.emails + record.tail_emails
    if record.recovered:
        totals.recovered += 1
        totals.revenue[str(case.get("currency") or "usd")] += record.recovered


def _merge(totals: Totals, one: Totals) -> None:
    totals.cases += 1
    totals.recovered += one.recovered
    totals.retries += one.retries
    totals.emails += one.emails
    for currency, value in one.revenue.items():
        totals.revenue[currency] += value
