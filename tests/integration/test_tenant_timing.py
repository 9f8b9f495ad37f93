"""The live platform decides with each tenant's own learned retry timing: the prior refitted from the tenant's
attempt ledger (real PostgreSQL rows: classified failures and settled retries), cached between refits, and other
tenants untouched."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from actors.timing import TenantTiming
from store import Database, attempts, events
from store.events import NewEvent
from strategies.learned import Slot

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, max_size=2)
    await database.open()
    yield database
    await database.close()


async def _history(db: Database, tenant: str, cases: int, succeeded_on_day: int) -> None:
    """`cases` insufficient-funds failures; a first retry on day 1 that fails and one on `succeeded_on_day` that
    succeeds, for each."""
    async with db.transaction() as conn:
        for n in range(cases):
            failed_at = NOW - timedelta(days=30, hours=n)
            invoice, customer = f"in_{tenant}_{n}", f"cus_{tenant}_{n}"
            await events.append(conn, tenant, customer, 0, [NewEvent("FailureClassified", {
                "invoice_id": invoice, "card": {"card_country": "US"}, "at": failed_at.isoformat(),
                "classification": {"category": "SOFT_DECLINE", "reason": "insufficient_funds", "retryable": True}})])
            for attempt_no, day, status in ((1, 1, "failed"), (2, succeeded_on_day, "succeeded")):
                await attempts.record(conn, attempts.Attempt(
                    tenant, f"payrisk:{tenant}:{invoice}:{attempt_no}", customer, invoice, attempt_no, "stripe",
                    status, 1000, "usd", f"fp_{customer}", "visa", failed_at + timedelta(days=day, hours=3)))


async def test_a_tenants_ledger_moves_its_timing_away_from_the_prior(db: Database) -> None:
    learned, fresh = f"t-{uuid.uuid4().hex[:6]}", f"t-{uuid.uuid4().hex[:6]}"
    await _history(db, learned, cases=60, succeeded_on_day=5)
    timing = TenantTiming(ttl=600.0)
    async with db.connection() as conn:
        planner = await timing.planner(conn, learned, NOW)
        untouched = await timing.planner(conn, fresh, NOW)
        again = await timing.planner(conn, learned, NOW)
    assert again is planner  # cached until the refit interval ends
    model, prior = planner._timing, untouched._timing  # noqa: SLF001 - the model each planner decides with
    assert model is not None and prior is not None
    assert model.observations == 120 and prior.observations == 0
    day_one = Slot("insufficient_funds", None, 1.1, 10, 15, 1)
    day_five = Slot("insufficient_funds", None, 5.1, 10, 15, 2)
    assert model.probability(day_one) < prior.probability(day_one)  # every day-1 retry failed here
    assert model.probability(day_five) > prior.probability(day_five)  # every day-5 retry succeeded
    assert "120 ledger attempts" in model.label
