"""A delivery its customer's home cannot apply never takes its batch or its customer down, and is quarantined
with its reason after a few tries instead of being re-sent for ever (issue 16, point 1). Real Ray shards and
PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import ray

from actors.clock import start_sim_clock
from actors.system import ActorSystem
from gateway.dispatch import Dispatcher
from gateway.metrics import GatewayMetrics
from gateway.redispatch import normalize_stored
from settings import Settings, load_settings
from store import Database
from store.deliveries import MAX_APPLY_FAILURES
from tests.support.stripe_events import SECRET, envelope, invoice

from .test_recovery_flow import T0


@pytest.fixture(scope="module")
def settings(database_url: str, redis_url: str, ray_session: None) -> Settings:
    return load_settings(environ={}, dotenv=None, database_url=database_url, redis_url=redis_url,
                         stripe_webhook_secrets=(SECRET,), shards=1, sweep_interval_seconds=0.2,
                         sweep_grace_seconds=0.0)


@pytest.fixture(scope="module")
def system(settings: Settings) -> Iterator[ActorSystem]:
    clock = start_sim_clock(T0)
    system = ActorSystem(settings, clock="sim", planner="default")
    system.start(run_loops=False)
    yield system
    system.stop()
    ray.kill(clock)


def _store(database_url: str, body: bytes, event_id: str, customer: str, status: str = "received") -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO deliveries (tenant_id, provider, provider_event_id, event_type, customer_id, body, headers,"
            " status) VALUES ('default', 'stripe', %s, 'invoice.payment_failed', %s, %s, '{}', %s)"
            " RETURNING delivery_id", (event_id, customer, body, status)).fetchone()
    assert row is not None
    return int(row[0])


def _status(database_url: str, delivery_id: int) -> tuple[str, str | None, int]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT status, status_reason, apply_failures FROM deliveries WHERE delivery_id = %s",
                           (delivery_id,)).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def _failure(customer: str) -> tuple[str, bytes]:
    event_id = f"evt_{uuid.uuid4().hex[:12]}"
    return event_id, envelope(event_id, "invoice.payment_failed", invoice(f"in_{event_id}", customer))


async def _until(predicate: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return False


async def test_a_delivery_its_home_cannot_apply_is_quarantined_after_a_few_tries_and_spares_its_batch(
        settings: Settings, system: ActorSystem, database_url: str) -> None:
    customer = f"cus_{uuid.uuid4().hex[:8]}"
    good_id, good_body = _failure(customer)
    bad_id, bad_body = _failure(customer)
    good = _store(database_url, good_body, good_id, customer)
    bad = _store(database_url, bad_body, bad_id, customer)
    _, events = normalize_stored("stripe", bad_body)
    poisoned: list[dict[str, Any]] = [{**e, "invoice_id": "in_\u0000poison"} for e in events]  # jsonb refuses it
    _, good_events = normalize_stored("stripe", good_body)
    db = Database(database_url, max_size=2)
    await db.open()
    quiet = settings.replace(sweep_interval_seconds=3600, sweep_grace_seconds=3600)
    dispatcher = Dispatcher(db, quiet, GatewayMetrics())
    dispatcher.start()
    try:
        await asyncio.to_thread(dispatcher.refresh_handles)
        dispatcher.submit("default", good, customer, good_events)
        dispatcher.submit("default", bad, customer, poisoned)  # the same batch, the same customer
        assert await _until(lambda: _status(database_url, good)[0] == "applied")
        for _ in range(MAX_APPLY_FAILURES - 1):
            dispatcher.submit("default", bad, customer, poisoned)
            await asyncio.sleep(0.3)
        assert await _until(lambda: _status(database_url, bad)[0] == "quarantined")
    finally:
        await dispatcher.stop()
        await db.close()
    status, reason, failures = _status(database_url, bad)
    assert failures == MAX_APPLY_FAILURES
    assert reason is not None and f"after {MAX_APPLY_FAILURES} tries" in reason and "0000" in reason


async def test_a_stored_delivery_with_a_nul_is_quarantined_by_the_sweeper_not_re_sent(
        settings: Settings, system: ActorSystem, database_url: str) -> None:
    customer = f"cus_{uuid.uuid4().hex[:8]}"
    event_id = f"evt_{uuid.uuid4().hex[:12]}"
    body = envelope(event_id, "invoice.payment_failed", invoice("in_\u0000legacy", customer))
    delivery = _store(database_url, body, event_id, customer, status="dispatched")
    db = Database(database_url, max_size=2)
    await db.open()
    try:
        dispatcher = Dispatcher(db, settings, GatewayMetrics())
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE deliveries SET dispatched_at = now() - interval '1 hour' WHERE delivery_id = %s",
                         (delivery,))
        await dispatcher.sweep(0.0)
    finally:
        await db.close()
    status, reason, _ = _status(database_url, delivery)
    assert status == "quarantined" and reason is not None and "NUL" in reason


async def test_flush_now_sends_without_waiting_for_more_and_settled_returns_once_the_shards_applied(
        settings: Settings, system: ActorSystem, database_url: str) -> None:
    def handed(count: int) -> list[tuple[int, str, list[dict[str, Any]]]]:
        out = []
        for _ in range(count):
            customer = f"cus_{uuid.uuid4().hex[:8]}"
            event_id, body = _failure(customer)
            out.append((_store(database_url, body, event_id, customer), customer, normalize_stored("stripe", body)[1]))
        return out

    db = Database(database_url, max_size=2)
    await db.open()
    quiet = settings.replace(sweep_interval_seconds=3600, sweep_grace_seconds=3600)
    dispatcher = Dispatcher(db, quiet, GatewayMetrics(), flush_ms=60_000)  # a batch would wait a minute for more
    dispatcher.start()
    try:
        await asyncio.to_thread(dispatcher.refresh_handles)
        first = handed(3)
        for delivery_id, customer, events in first:
            dispatcher.submit("default", delivery_id, customer, events)
        dispatcher.flush_now()  # the burst is complete: sent now, not a minute later
        assert await _until(lambda: all(_status(database_url, d)[0] == "applied" for d, _, _ in first), 20.0)
        second = handed(5)
        for delivery_id, customer, events in second:
            dispatcher.submit("default", delivery_id, customer, events)
        await asyncio.wait_for(dispatcher.settled(), 20.0)
        # settled means answered: every delivery is applied at this moment, without polling for it
        assert [_status(database_url, d)[0] for d, _, _ in second] == ["applied"] * 5
    finally:
        await dispatcher.stop()
        await db.close()
