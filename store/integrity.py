"""Synchronous reads for the integrity checks that `payrisk chaos` runs after every fault and `payrisk demo` runs at
the end: what was stored, applied, charged and left behind, read straight from PostgreSQL (never through a fault
proxy). Read-only; one autocommit connection per `Reader`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from store.errors import translate


class Reader:
    """One connection; every method is one query. psycopg errors leave as store errors."""

    def __init__(self, url: str, connect_timeout: int = 10) -> None:
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout)
        except psycopg.Error as exc:
            raise translate(exc) from None

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def _all(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except psycopg.Error as exc:
            raise translate(exc) from None

    def _one(self, sql: str, params: Any = None) -> tuple[Any, ...]:
        rows = self._all(sql, params)
        return rows[0] if rows else ()

    def delivery_statuses(self, tenant: str | None = None) -> dict[str, tuple[str, str | None]]:
        """provider event id → (status, reason)."""
        rows = self._all("SELECT provider_event_id, status, status_reason FROM deliveries"
                         " WHERE %(t)s::text IS NULL OR tenant_id = %(t)s", {"t": tenant})
        return {r[0]: (r[1], r[2]) for r in rows}

    def delivery_counts(self, tenant: str | None = None) -> dict[str, int]:
        """status → how many deliveries."""
        rows = self._all("SELECT status, count(*) FROM deliveries WHERE %(t)s::text IS NULL OR tenant_id = %(t)s"
                         " GROUP BY 1", {"t": tenant})
        return {str(status): int(n) for status, n in rows}

    def pending_deliveries(self, tenant: str) -> int:
        """Deliveries stored but not applied yet (received or dispatched): read from the partial index of the
        pending ones, so the cost follows the backlog, not the whole history."""
        rows = self._all("SELECT count(*) FROM deliveries WHERE status IN ('received', 'dispatched')"
                         " AND tenant_id = %(t)s", {"t": tenant})
        return int(rows[0][0])

    def work_due(self, now: datetime) -> tuple[bool, bool]:
        """(a timer is due at `now`, an outbox row is due at `now`): what the scheduler's and the outbox's next
        pass would find, read from their partial indexes (a leased row counts: its pass then finds nothing)."""
        rows = self._all(
            "SELECT EXISTS (SELECT 1 FROM timers WHERE fired_at IS NULL AND cancelled_at IS NULL"
            "               AND due_at <= %(now)s),"
            "       EXISTS (SELECT 1 FROM outbox WHERE sent_at IS NULL AND dead_at IS NULL"
            "               AND available_at <= %(now)s)", {"now": now})
        return bool(rows[0][0]), bool(rows[0][1])

    def events_recorded_twice(self) -> list[tuple[str, str, int]]:
        """(delivery id, event type, count) for each delivery whose event was recorded more than once."""
        return [(str(d), str(t), int(n)) for d, t, n in self._all(
            "SELECT payload->>'delivery_id', event_type, count(*) FROM events WHERE payload ? 'delivery_id'"
            " AND payload->>'delivery_id' IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1")]

    def attempt_keys(self, tenant: str | None = None) -> set[str]:
        return {r[0] for r in self._all("SELECT idempotency_key FROM attempts"
                                        " WHERE %(t)s::text IS NULL OR tenant_id = %(t)s", {"t": tenant})}

    def attempt_count(self, tenant: str | None = None) -> int:
        return int(self._one("SELECT count(*) FROM attempts WHERE %(t)s::text IS NULL OR tenant_id = %(t)s",
                             {"t": tenant})[0])

    def attempts_by_card(self, tenant: str | None = None) -> list[tuple[str, str | None, datetime, str]]:
        """(card fingerprint or customer, brand, when, status) in time order: the network rules' input."""
        return [(str(card), brand, at, str(status)) for card, brand, at, status in self._all(
            "SELECT coalesce(card_fingerprint, customer_id), card_brand, intended_at, status FROM attempts"
            " WHERE %(t)s::text IS NULL OR tenant_id = %(t)s ORDER BY intended_at", {"t": tenant})]

    def case_states(self) -> list[tuple[str, str, str | None]]:
        """(stream, invoice, state) of every case in every checkpoint."""
        return [(str(s), str(i), st) for s, i, st in self._all(
            "SELECT stream_id, c.key, c.value->>'state' FROM checkpoints"
            " CROSS JOIN LATERAL jsonb_each(state->'cases') c")]

    def customer_checkpoints(self) -> list[tuple[str, str, int, dict[str, Any]]]:
        """(tenant, stream, version, state) of every customer stream (the monitor's streams left out)."""
        return [(str(t), str(s), int(v), st) for t, s, v, st in self._all(
            "SELECT tenant_id, stream_id, version, state FROM checkpoints WHERE stream_id NOT LIKE 'monitor:%%'")]

    def stream_events(self, tenant: str, stream: str) -> list[tuple[str, dict[str, Any], int]]:
        """(type, payload, version) of the stream, in order."""
        return [(str(t), p, int(v)) for t, p, v in self._all(
            "SELECT event_type, payload, version FROM events WHERE tenant_id = %s AND stream_id = %s"
            " ORDER BY version", (tenant, stream))]

    def outbox_left_behind(self, now: datetime, lease: timedelta, settle_seconds: float = 10.0
                           ) -> list[tuple[int, str, str | None]]:
        """(id, topic, last error) of rows due at `now`, not leased to a live worker and older than
        `settle_seconds` (a row written in the last seconds is in flight, not left behind)."""
        return [(int(i), str(t), e) for i, t, e in self._all(
            "SELECT outbox_id, topic, last_error FROM outbox WHERE sent_at IS NULL AND dead_at IS NULL"
            " AND available_at <= %s AND (claimed_at IS NULL OR claimed_at < %s)"
            " AND created_at < now() - make_interval(secs => %s)", (now, now - lease, settle_seconds))]

    def work_left(self, now: datetime, lease: timedelta) -> tuple[int, int, int]:
        """(deliveries not applied, timers due at `now`, outbox rows due and not leased)."""
        row = self._one(
            "SELECT (SELECT count(*) FROM deliveries WHERE status IN ('received', 'dispatched')),"
            " (SELECT count(*) FROM timers WHERE fired_at IS NULL AND cancelled_at IS NULL AND due_at <= %s),"
            " (SELECT count(*) FROM outbox WHERE sent_at IS NULL AND dead_at IS NULL AND available_at <= %s"
            "  AND (claimed_at IS NULL OR claimed_at < %s))", (now, now, now - lease))
        return int(row[0]), int(row[1]), int(row[2])

    def recovered_by_currency(self, tenant: str) -> dict[str, int]:
        """Recovered amounts per currency from the InvoiceRecovered events."""
        rows = self._all("SELECT payload->>'currency', sum((payload->>'amount')::bigint) FROM events"
                         " WHERE tenant_id = %s AND event_type = 'InvoiceRecovered' GROUP BY 1", (tenant,))
        return {str(c): int(a or 0) for c, a in rows}

    def totals(self, tenant: str) -> tuple[int, int, int]:
        """(deliveries, invoices recovered, attempts) of the tenant."""
        row = self._one(
            "SELECT (SELECT count(*) FROM deliveries WHERE tenant_id = %(t)s),"
            " (SELECT count(*) FROM events WHERE tenant_id = %(t)s AND event_type = 'InvoiceRecovered'),"
            " (SELECT count(*) FROM attempts WHERE tenant_id = %(t)s)", {"t": tenant})
        return int(row[0]), int(row[1]), int(row[2])
