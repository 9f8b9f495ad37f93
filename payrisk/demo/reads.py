"""What the demo reads back from the platform's database (sync psycopg, one autocommit connection)."""

from __future__ import annotations

from collections import Counter

import psycopg

from payrisk.demo.network import AttemptRow
from payrisk.demo.summary import Deliveries, Money

TENANT = "default"  # the run has a database of its own, so the default tenant is the run's


class Reads:
    def __init__(self, database_url: str) -> None:
        self._conn = psycopg.connect(database_url, autocommit=True)

    def close(self) -> None:
        self._conn.close()

    def _one(self, sql: str) -> int:
        row = self._conn.execute(sql, {"tenant": TENANT}).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def pending_deliveries(self) -> int:
        """Deliveries acknowledged but not yet applied (received or dispatched)."""
        return self._one(
            "SELECT count(*) FROM deliveries WHERE status IN ('received', 'dispatched')"
            " AND tenant_id = %(tenant)s"
        )

    def progress(self) -> tuple[int, int, int]:
        """(deliveries stored, invoices recovered, retry attempts) so far."""
        row = self._conn.execute(
            "SELECT (SELECT count(*) FROM deliveries WHERE tenant_id = %(tenant)s),"
            " (SELECT count(*) FROM events WHERE tenant_id = %(tenant)s AND event_type = 'InvoiceRecovered'),"
            " (SELECT count(*) FROM attempts WHERE tenant_id = %(tenant)s)",
            {"tenant": TENANT},
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    def deliveries(self, acknowledged: int) -> Deliveries:
        rows = self._conn.execute(
            "SELECT status, count(*) FROM deliveries WHERE tenant_id = %(tenant)s GROUP BY status",
            {"tenant": TENANT},
        ).fetchall()
        by_status = {str(status): int(n) for status, n in rows}
        return Deliveries(
            acknowledged=acknowledged,
            stored=sum(by_status.values()),
            applied=by_status.get("applied", 0),
            ignored=by_status.get("ignored", 0),
            quarantined=by_status.get("quarantined", 0),
            pending=by_status.get("received", 0) + by_status.get("dispatched", 0),
        )

    def recovered_revenue(self) -> Money:
        """Sum of `InvoiceRecovered.amount` per currency: the platform's own account of revenue saved."""
        rows = self._conn.execute(
            "SELECT payload->>'currency', sum((payload->>'amount')::bigint) FROM events"
            " WHERE tenant_id = %(tenant)s AND event_type = 'InvoiceRecovered' GROUP BY 1",
            {"tenant": TENANT},
        ).fetchall()
        total: Counter[str] = Counter()
        for currency, amount in rows:
            total[str(currency).lower()] += int(amount)
        return dict(total)

    def attempts(self) -> list[AttemptRow]:
        rows = self._conn.execute(
            "SELECT coalesce(card_fingerprint, customer_id), card_brand, intended_at, status FROM attempts"
            " WHERE tenant_id = %(tenant)s",
            {"tenant": TENANT},
        ).fetchall()
        return [
            AttemptRow(card=card, brand=brand, at=at, declined=status == "failed")
            for card, brand, at, status in rows
        ]

    def attempt_keys(self) -> set[str]:
        rows = self._conn.execute(
            "SELECT idempotency_key FROM attempts WHERE tenant_id = %(tenant)s", {"tenant": TENANT}
        ).fetchall()
        return {str(key) for (key,) in rows}
