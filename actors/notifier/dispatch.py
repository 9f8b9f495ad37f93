"""The outbox dispatcher: claim due rows, deliver them, record what happened — each step its own transaction.

Claims are leases (`claimed_by`, `claimed_at`): a worker that dies mid-send leaves its rows to be re-claimed
after `lease`, which is the one way a notification can go out twice (see docs/NOTIFICATIONS.md).
Claiming is serialized by an advisory lock so that two workers never hold emails to the same customer at
once — otherwise both could pass the frequency cap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from psycopg import AsyncConnection
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from actors.notifier.sender import NO_CHANNEL_REASON, DeliveryResult, customer_key

DEFAULT_LEASE = timedelta(minutes=5)
log = structlog.get_logger("payrisk.notifier")
_warned_no_channel = False  # the missing alert channel is logged once per process, then only counted

_CLAIM = """
UPDATE outbox o SET claimed_by = %(worker)s, claimed_at = %(now)s
WHERE o.outbox_id IN (
    SELECT c.outbox_id FROM outbox c
    WHERE c.sent_at IS NULL AND c.dead_at IS NULL AND c.available_at <= %(now)s
      AND c.topic IN ('email', 'alert')
      AND (c.claimed_at IS NULL OR c.claimed_at < %(stale)s)
      AND (c.topic <> 'email' OR NOT EXISTS (
          SELECT 1 FROM outbox b
          WHERE b.tenant_id = c.tenant_id AND b.topic = 'email' AND b.outbox_id <> c.outbox_id
            AND b.payload->>'customer_id' = c.payload->>'customer_id'
            AND b.sent_at IS NULL AND b.dead_at IS NULL AND b.claimed_at >= %(stale)s))
    ORDER BY c.available_at, c.outbox_id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
RETURNING o.outbox_id, o.tenant_id, o.topic, o.idempotency_key, o.stream_id, o.payload, o.attempts
"""
_RECENT = """
SELECT sent_at FROM notifications
WHERE tenant_id = %s AND customer_id = %s AND channel = 'email' AND sent_at > %s
"""
_RECORD = """
INSERT INTO notifications
    (tenant_id, idempotency_key, customer_id, channel, template, recipient, sent_at, detail, status)
VALUES (%(tenant)s, %(key)s, %(customer)s, %(channel)s, %(template)s, %(recipient)s, %(now)s, %(detail)s,
        %(status)s)
ON CONFLICT DO NOTHING
"""
_MARK_SENT = """
UPDATE outbox SET sent_at = %(now)s, claimed_by = NULL, claimed_at = NULL, last_error = %(error)s
WHERE outbox_id = %(id)s AND sent_at IS NULL
"""
_RESCHEDULE = """
UPDATE outbox SET available_at = %(retry_at)s, attempts = attempts + %(bump)s, last_error = %(error)s,
       claimed_by = NULL, claimed_at = NULL
WHERE outbox_id = %(id)s AND claimed_by = %(worker)s AND sent_at IS NULL AND dead_at IS NULL
"""
_BURY = """
UPDATE outbox SET dead_at = %(now)s, attempts = attempts + 1, last_error = %(error)s,
       claimed_by = NULL, claimed_at = NULL
WHERE outbox_id = %(id)s AND claimed_by = %(worker)s AND sent_at IS NULL AND dead_at IS NULL
"""
_RELEASE = """
UPDATE outbox SET claimed_by = NULL, claimed_at = NULL
WHERE outbox_id = ANY(%(ids)s) AND claimed_by = %(worker)s AND sent_at IS NULL
"""
_ENQUEUE = """
INSERT INTO outbox (tenant_id, topic, idempotency_key, stream_id, payload, available_at)
VALUES (%(tenant)s, 'alert', %(key)s, %(stream)s, %(payload)s, %(now)s)
ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
"""


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
    pool: AsyncConnectionPool[Any],
    sender: Deliverer,
    now: datetime,
    worker_id: str,
    limit: int = 50,
    lease: timedelta = DEFAULT_LEASE,
) -> int:
    """Claim up to `limit` due rows, deliver them, record the outcomes. Returns the number of rows handled."""
    rows = await claim(pool, now, worker_id, limit, lease)
    if not rows:
        return 0
    try:
        recent = await recent_sends(pool, rows, now - sender.lookback)
        results = await sender.deliver_many(rows, now, recent)
    except Exception:
        # the notifier pool is away (an actor or its node died): give the rows back now rather than at the
        # lease's end — what a dying notifier may have sent is the same case as a lease that runs out
        await release(pool, [row["outbox_id"] for row in rows], worker_id)
        raise
    by_id = {row["outbox_id"]: row for row in rows}
    for result in results:
        await record(pool, by_id[result.outbox_id], result, now, worker_id)
    return len(results)


async def release(pool: AsyncConnectionPool[Any], outbox_ids: list[int], worker_id: str) -> None:
    """Give back rows `worker_id` claimed but could not deliver (the next pass claims them again)."""
    async with pool.connection() as conn:
        await conn.execute(_RELEASE, {"ids": outbox_ids, "worker": worker_id})


async def claim(
    pool: AsyncConnectionPool[Any], now: datetime, worker_id: str, limit: int, lease: timedelta
) -> list[dict[str, Any]]:
    """Lease due rows to `worker_id` (one short transaction)."""
    params = {"worker": worker_id, "now": now, "stale": now - lease, "limit": limit}
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('payrisk:outbox-claim'))")
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(_CLAIM, params)
        return sorted(await cursor.fetchall(), key=lambda row: row["outbox_id"])


async def recent_sends(
    pool: AsyncConnectionPool[Any], rows: Sequence[Mapping[str, Any]], since: datetime
) -> dict[str, list[datetime]]:
    """Each email recipient's sends after `since`, keyed by `customer_key`."""
    customers = {
        (row["tenant_id"], row["payload"].get("customer_id")) for row in rows if row["topic"] == "email"
    }
    recent: dict[str, list[datetime]] = {}
    async with pool.connection() as conn:
        for tenant_id, customer_id in customers:
            if customer_id is None:
                continue
            # an explicit row factory: the pool's connections may return dict rows (payrisk.store does)
            cursor = conn.cursor(row_factory=tuple_row)
            await cursor.execute(_RECENT, (tenant_id, str(customer_id), since))
            recent[customer_key(tenant_id, str(customer_id))] = [sent for (sent,) in await cursor.fetchall()]
    return recent


async def record(
    pool: AsyncConnectionPool[Any],
    row: Mapping[str, Any],
    result: DeliveryResult,
    now: datetime,
    worker_id: str,
) -> None:
    """Write the outcome of one delivery in one transaction. Safe to repeat (every write is guarded).

    `no_channel` (an alert while no alert channel is configured) is final like `sent` but recorded as what it
    is, counted, and logged at warning once per process.
    """
    async with pool.connection() as conn, conn.transaction():
        if result.status in ("sent", "no_channel"):
            await _record_sent(conn, row, result, now)
        elif result.status == "dead":
            await _record_dead(conn, row, result, now, worker_id)
        else:
            bump = 1 if result.status == "failed" else 0  # a deferral is not a failure
            params = {"id": row["outbox_id"], "worker": worker_id, "retry_at": result.retry_at or now}
            await conn.execute(_RESCHEDULE, {**params, "bump": bump, "error": result.error})
    if result.status == "no_channel":
        _no_channel(row, result)


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


async def _record_sent(
    conn: AsyncConnection[Any], row: Mapping[str, Any], result: DeliveryResult, now: datetime
) -> None:
    await conn.execute(
        _RECORD,
        {
            "tenant": row["tenant_id"],
            "key": row["idempotency_key"],
            "customer": result.customer_id,
            "channel": result.channel or row["topic"],
            "template": result.template,
            "recipient": result.recipient,
            "now": now,
            "detail": Jsonb({**result.detail, "outbox_id": row["outbox_id"]}),
            "status": result.status,
        },
    )
    error = NO_CHANNEL_REASON if result.status == "no_channel" else None
    await conn.execute(_MARK_SENT, {"id": row["outbox_id"], "now": now, "error": error})


async def _record_dead(
    conn: AsyncConnection[Any], row: Mapping[str, Any], result: DeliveryResult, now: datetime, worker_id: str
) -> None:
    cursor = await conn.execute(
        _BURY, {"id": row["outbox_id"], "worker": worker_id, "now": now, "error": result.error}
    )
    if cursor.rowcount and not _is_dead_letter_alert(row):
        params = {"tenant": row["tenant_id"], "key": f"dead_letter:{row['idempotency_key']}", "now": now}
        await conn.execute(
            _ENQUEUE,
            {**params, "stream": row.get("stream_id"), "payload": Jsonb(dead_letter_alert(row, result))},
        )


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
