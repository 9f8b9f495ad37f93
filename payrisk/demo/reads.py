"""What the demo reads back from the platform's database (the store's integrity reads, one connection)."""

from __future__ import annotations

from datetime import datetime

from payrisk.demo.network import AttemptRow
from payrisk.demo.summary import Deliveries, Money
from store.integrity import Reader

TENANT = "default"  # the run has a database of its own, so the default tenant is the run's


class Reads:
    def __init__(self, database_url: str) -> None:
        self._reader = Reader(database_url)

    def close(self) -> None:
        self._reader.close()

    def pending_deliveries(self) -> int:
        """Deliveries acknowledged but not yet applied (received or dispatched)."""
        return self._reader.pending_deliveries(TENANT)

    def work_due(self, now: datetime) -> tuple[bool, bool]:
        """(a platform timer is due, an outbox row is due) at `now`."""
        return self._reader.work_due(now)

    def progress(self) -> tuple[int, int, int]:
        """(deliveries stored, invoices recovered, retry attempts) so far."""
        return self._reader.totals(TENANT)

    def deliveries(self, acknowledged: int) -> Deliveries:
        by_status = self._reader.delivery_counts(TENANT)
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
        total: dict[str, int] = {}
        for currency, amount in self._reader.recovered_by_currency(TENANT).items():
            total[currency.lower()] = total.get(currency.lower(), 0) + amount
        return total

    def attempts(self) -> list[AttemptRow]:
        return [AttemptRow(card=card, brand=brand, at=at, declined=status == "failed")
                for card, brand, at, status in self._reader.attempts_by_card(TENANT)]

    def attempt_keys(self) -> set[str]:
        return self._reader.attempt_keys(TENANT)
