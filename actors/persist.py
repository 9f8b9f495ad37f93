"""Write decisions in the caller's transaction: events, checkpoint, timers, outbox, attempt ledger rows.

`Writes` collects what a transaction's customers decided and writes it with one statement per table (events after
one version check for every stream, one checkpoint per customer, the timers' final settings, the outbox rows, the
attempt ledger's rows), so a batch of a hundred customers costs a handful of statements rather than hundreds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from actors.domain.decisions import ChargeRequest, Decision
from actors.domain.streams import provider_of
from store import Conn, attempts, checkpoints, events, outbox, timers
from store.events import Append, NewEvent


class Writes:
    """One transaction's decisions, per customer, until `flush` writes them."""

    def __init__(self, now: datetime) -> None:
        self._now = now
        self._appends: list[Append] = []
        self._checkpoints: dict[tuple[str, str], tuple[str, str, int, dict[str, Any]]] = {}
        self._timers: dict[tuple[str, str, str], timers.TimerSet] = {}
        self._outbox: list[outbox.NewSideEffect] = []
        self._attempts: list[attempts.Attempt] = []  # intents and the provider's own attempts, until written
        self._cards: set[tuple[str, str]] = set()  # (tenant, card fingerprint) of every attempt row decided here

    @property
    def has_attempts(self) -> bool:
        return bool(self._attempts)

    def touches(self, tenant_id: str, cards: list[str]) -> bool:
        """Whether this transaction decided an attempt on one of these cards (its network budget then reads the
        ledger again, after `flush_attempts`)."""
        return any((tenant_id, card) in self._cards for card in cards)

    def add(self, tenant_id: str, customer_id: str, version: int, decisions: list[Decision]) -> int:
        """Collect one customer's decisions after `version` (once per customer per transaction); the new version."""
        new_events = [NewEvent(t, p) for d in decisions for t, p in d.events]
        self._ledger([row for d in decisions for row in d.ledger])
        if not new_events:
            return version
        self._appends.append(Append(tenant_id, customer_id, version, new_events))
        new_version = version + len(new_events)
        self._checkpoints[(tenant_id, customer_id)] = (tenant_id, customer_id, new_version, decisions[-1].state)
        for decision in decisions:
            self._effects(tenant_id, customer_id, decision)
        return new_version

    def _effects(self, tenant_id: str, customer_id: str, decision: Decision) -> None:
        for timer in decision.timers:  # the last setting of a key wins, as one statement after another would
            payload = {**timer.payload, "invoice_id": timer.key.split(":", 1)[1]} if timer.due_at else {}
            self._timers[(tenant_id, customer_id, timer.key)] = timers.TimerSet(
                tenant_id, customer_id, timer.key, timer.due_at, payload)
        self._outbox += [outbox.NewSideEffect(tenant_id, cmd.topic, cmd.idempotency_key, cmd.payload, customer_id,
                                              self._now) for cmd in decision.outbox]
        self._ledger([intent(tenant_id, customer_id, charge, self._now) for charge in decision.charges])

    def _ledger(self, rows: list[attempts.Attempt]) -> None:
        self._attempts += rows
        self._cards.update((row.tenant_id, row.card_fingerprint) for row in rows if row.card_fingerprint)

    async def flush_attempts(self, conn: Conn) -> None:
        """Write the attempt rows collected so far (intents, the provider's own attempts): a network budget read
        from the ledger in this transaction then counts them."""
        rows, self._attempts = self._attempts, []
        await attempts.record_many(conn, rows)

    async def flush(self, conn: Conn) -> None:
        """Write everything collected; ConcurrencyConflict when a stream moved (the transaction then rolls back).

        In pipeline mode: the statements go out together and PostgreSQL's answers are read once at the end (the
        version check is read before the inserts), so a flush costs two round trips instead of one per statement —
        a decision's latency on a busy machine is mostly round trips. An error still fails the transaction. (None of
        these statements reads a row count, which pipeline mode gives only after the sync.)"""
        async with conn.pipeline():
            await events.append_many(conn, self._appends)
            await checkpoints.save_many(conn, list(self._checkpoints.values()))
            await timers.set_many(conn, list(self._timers.values()))
            await outbox.enqueue_many(conn, self._outbox)
            await self.flush_attempts(conn)
        self._appends, self._checkpoints, self._timers, self._outbox = [], {}, {}, []


async def persist(conn: Conn, tenant_id: str, customer_id: str, version: int, decisions: list[Decision],
                  now: datetime) -> int:
    """Append one customer's decisions after `version` and write their effects; returns the new version."""
    writes = Writes(now)
    new_version = writes.add(tenant_id, customer_id, version, decisions)
    await writes.flush(conn)
    return new_version


def intent(tenant_id: str, customer_id: str, charge: ChargeRequest, now: datetime) -> attempts.Attempt:
    """The attempt's intent row, committed before the provider call (invariant I3)."""
    return attempts.Attempt(
        tenant_id, charge.idempotency_key, customer_id, charge.invoice_id, charge.attempt_no,
        provider_of(customer_id), "intent", charge.amount, charge.currency, charge.card.get("card_fingerprint"),
        charge.card.get("card_brand"), now)


async def record_intent(conn: Conn, tenant_id: str, customer_id: str, charge: ChargeRequest,
                        now: datetime) -> None:
    await attempts.record(conn, intent(tenant_id, customer_id, charge, now))


async def record_outcome(conn: Conn, tenant_id: str, key: str, status: str, outcome: dict[str, Any]) -> None:
    await attempts.settle(conn, tenant_id, key, status, outcome)
