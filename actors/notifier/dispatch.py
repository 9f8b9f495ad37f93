"""The outbox dispatcher: claim due emails and alerts, deliver them, record what happened — each step its own
transaction, every statement in the store (`store.outbox`, `store.notifications`).

Claims are leases on the caller's clock; a worker that dies mid-send leaves its rows to be claimed again when the
lease ends, which is the one way a notification can go out twice (see docs/NOTIFICATIONS.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from actors.notifier.sender import NO_CHANNEL_REASON, DeliveryResult, customer_key
from store import Database, StoreError, notifications, outbox
from store.outbox import DEFAULT_LEASE

TOPICS = ("email", "alert")
log = structlog.get_logger("payrisk.notifier")
_warned_no_channel = False  # the missing alert channel is logged once per process, then only counted


class Deliverer(Protocol):
    """A local `Sender` or a Ray notifier actor behind `actors.notifier.actor.ActorDeliverer`."""

    @property
    def lookback(self) -> timedelta: ...

    async def deliver_many(
        self,
        rows: Sequence[Mapping[str, Any]],
        now: datetime,
        recent_by_customer: Mapping[str, Sequence[datetime]],
    ) -> list[DeliveryResult]: ...


async def run_once(
    db: Database,
    sender: Deliverer,
    now: datetime,
    worker_id: str,
    limit: int = 50,
    lease: timedelta = DEFAULT_LEASE,
) -> int:
    """Claim up to `limit` due rows, deliver them, record the outcomes. Returns the number of rows handled."""
    rows = [row.as_dict() for row in await outbox.claim(db, now, worker_id, TOPICS, limit=limit, lease=lease)]
    if not rows:
        return 0
    try:
        recent = await recent_sends(db, rows, now - sender.lookback)
        results = await sender.deliver_many(rows, now, recent)
    except Exception:
        # the notifier pool is away (an actor or its node died): give the rows back now rather than at the
        # lease's end — what a dying notifier may have sent is the same case as a lease that runs out
        await outbox.release(db, [row["outbox_id"] for row in rows], worker_id)
        raise
    await record_all(db, {row["outbox_id"]: row for row in rows}, results, now, worker_id)
    return len(results)


async def record_all(
    db: Database,
    by_id: Mapping[int, Mapping[str, Any]],
    results: Sequence[DeliveryResult],
    now: datetime,
    worker_id: str,
) -> None:
    """Every outcome of a pass in one transaction (one commit, not one per row); when that transaction fails, each
    outcome in its own, so that one row the database refuses never leaves the others' sends unrecorded (an
    unrecorded send goes out again when its lease ends)."""
    try:
        async with db.transaction() as conn:  # not pipelined: `bury` reads its row count
            for result in results:
                await _record_in(conn, by_id[result.outbox_id], result, now, worker_id)
    except StoreError as exc:
        log.warning("outbox.record_batch_failed", rows=len(results), error=str(exc)[:200])
        failed: StoreError | None = None
        for result in results:
            try:
                await record(db, by_id[result.outbox_id], result, now, worker_id)
            except StoreError as one:  # this row stays claimed (sent again at its lease's end); the rest go on
                failed = failed or one
        if failed is not None:
            raise failed from None
        return
    for result in results:
        if result.status == "no_channel":
            _no_channel(by_id[result.outbox_id], result)


async def recent_sends(
    db: Database, rows: Sequence[Mapping[str, Any]], since: datetime
) -> dict[str, list[datetime]]:
    """Each email recipient's sends after `since`, keyed by `customer_key`."""
    customers = {(str(row["tenant_id"]), str(row["payload"]["customer_id"])) for row in rows
                 if row["topic"] == "email" and row["payload"].get("customer_id") is not None}
    sent = await notifications.recent_emails(db, customers, since)
    return {customer_key(tenant, customer): times for (tenant, customer), times in sent.items()}


async def record(
    db: Database,
    row: Mapping[str, Any],
    result: DeliveryResult,
    now: datetime,
    worker_id: str,
) -> None:
    """Write the outcome of one delivery in one transaction. Safe to repeat (every write is guarded).

    `no_channel` (an alert while no alert channel is configured) is final like `sent` but recorded as what it
    is, counted, and logged at warning once per process.
    """
    async with db.transaction() as conn:
        await _record_in(conn, row, result, now, worker_id)
    if result.status == "no_channel":
        _no_channel(row, result)


async def _record_in(conn: Any, row: Mapping[str, Any], result: DeliveryResult, now: datetime,
                     worker_id: str) -> None:
    """The writes of one outcome, in the caller's transaction."""
    if result.status in ("sent", "no_channel"):
        await notifications.record(
            conn, row["tenant_id"], row["idempotency_key"], customer_id=result.customer_id,
            channel=result.channel or row["topic"], template=result.template, recipient=result.recipient,
            now=now, detail={**result.detail, "outbox_id": row["outbox_id"]}, status=result.status)
        note = NO_CHANNEL_REASON if result.status == "no_channel" else None
        await outbox.mark_sent(conn, row["outbox_id"], now, note)
    elif result.status == "dead":
        await _record_dead(conn, row, result, now, worker_id)
    else:  # a deferral (quiet hours, a cap) is not a failure
        await outbox.reschedule(conn, row["outbox_id"], worker_id, result.retry_at or now, result.error,
                                failed=result.status == "failed")


def _no_channel(row: Mapping[str, Any], result: DeliveryResult) -> None:
    """After commit: count the alert nobody received; say so at warning the first time."""
    global _warned_no_channel
    from actors.metrics import notifier_metrics

    notifier_metrics().alert_without_channel(result.template or "unknown")
    if not _warned_no_channel:
        _warned_no_channel = True
        log.warning(f"alerts are recorded but not sent: {NO_CHANNEL_REASON} (set SLACK_WEBHOOK_URL or "
                    "ALERT_WEBHOOK_URL); further ones are only counted (payrisk_alerts_no_channel)",
                    tenant_id=row["tenant_id"], kind=result.template, idempotency_key=row["idempotency_key"])


async def _record_dead(conn: Any, row: Mapping[str, Any], result: DeliveryResult, now: datetime,
                       worker_id: str) -> None:
    if await outbox.bury(conn, row["outbox_id"], worker_id, now, result.error) and not _is_dead_letter_alert(row):
        await outbox.enqueue(conn, row["tenant_id"], "alert", f"dead_letter:{row['idempotency_key']}",
                             dead_letter_alert(row, result), stream_id=row.get("stream_id"), available_at=now)


def _is_dead_letter_alert(row: Mapping[str, Any]) -> bool:
    """A dead `dead_letter` alert raises no further alert: the alert channel itself is what is down."""
    return bool(row["topic"] == "alert" and row["payload"].get("kind") == "dead_letter")


def dead_letter_alert(row: Mapping[str, Any], result: DeliveryResult) -> dict[str, Any]:
    """The alert payload announcing that `row` was dead-lettered."""
    payload = row["payload"] if isinstance(row["payload"], dict) else {}
    fields = {
        "tenant": str(row["tenant_id"]),
        "outbox_id": str(row["outbox_id"]),
        "topic": str(row["topic"]),
        "idempotency_key": str(row["idempotency_key"]),
        "attempts": str(int(row.get("attempts", 0)) + 1),
    }
    if payload.get("customer_id"):
        fields["customer_id"] = str(payload["customer_id"])
    what = payload.get("template") or payload.get("kind") or ""
    return {
        "kind": "dead_letter",
        "title": f"Notification dead-lettered: {row['topic']} {what}".strip(),
        "text": f"Gave up after {fields['attempts']} attempt(s). Last error: {result.error or 'unknown'}",
        "fields": fields,
        "severity": "critical",
    }
