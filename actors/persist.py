"""Write one decision in the caller's transaction: events, checkpoint, timers, outbox, attempt intents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from actors.domain.decisions import ChargeRequest, Decision
from actors.domain.streams import provider_of
from store import Conn, attempts, checkpoints, events, outbox, timers
from store.events import NewEvent


async def persist(conn: Conn, tenant_id: str, customer_id: str, version: int, decisions: list[Decision],
                  now: datetime) -> int:
    """Append every decision's events after `version` and write their effects; returns the new version."""
    new_events = [NewEvent(t, p) for d in decisions for t, p in d.events]
    if not new_events:
        return version
    new_version = await events.append(conn, tenant_id, customer_id, version, new_events)
    await checkpoints.save(conn, tenant_id, customer_id, new_version, decisions[-1].state)
    for decision in decisions:
        await _effects(conn, tenant_id, customer_id, decision, now)
    return new_version


async def _effects(conn: Conn, tenant_id: str, customer_id: str, decision: Decision, now: datetime) -> None:
    for timer in decision.timers:
        if timer.due_at is None:
            await timers.cancel(conn, tenant_id, customer_id, timer.key)
        else:
            payload = {**timer.payload, "invoice_id": timer.key.split(":", 1)[1]}
            await timers.schedule(conn, tenant_id, customer_id, timer.key, timer.due_at, payload)
    for cmd in decision.outbox:
        await outbox.enqueue(conn, tenant_id, cmd.topic, cmd.idempotency_key,
                             cmd.payload, stream_id=customer_id, available_at=now)
    for charge in decision.charges:
        await record_intent(conn, tenant_id, customer_id, charge, now)


async def record_intent(conn: Conn, tenant_id: str, customer_id: str, charge: ChargeRequest,
                        now: datetime) -> None:
    """The attempt's intent, committed before the provider call (invariant I3)."""
    await attempts.record(conn, attempts.Attempt(
        tenant_id, charge.idempotency_key, customer_id, charge.invoice_id, charge.attempt_no,
        provider_of(customer_id), "intent", charge.amount, charge.currency, charge.card.get("card_fingerprint"),
        charge.card.get("card_brand"), now))


async def record_outcome(conn: Conn, tenant_id: str, key: str, status: str, outcome: dict[str, Any]) -> None:
    await attempts.settle(conn, tenant_id, key, status, outcome)

