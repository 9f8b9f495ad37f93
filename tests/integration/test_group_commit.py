"""The gateway's group commit against real PostgreSQL and Redis: the Redis fast path answers a retry of a committed
delivery as a duplicate with one scripted call per flush, a burst (`submit_many`) is stored in order and flushed
without waiting out the window, and Redis away loses nothing (PostgreSQL's unique key still decides)."""

from __future__ import annotations

import asyncio
import time
import uuid

import psycopg
import pytest
import redis.asyncio as aioredis

from gateway.ingest import Delivery, GroupCommitter
from store import Database, StoreUnavailable


def _delivery(event_id: str, namespace: str) -> Delivery:
    return Delivery("default", "stripe", event_id, "invoice.payment_failed", "cus_gc", b'{"id":"x"}', {},
                    "received", redis_namespace=namespace)


def _rows(database_url: str, event_ids: list[str]) -> list[tuple[str, int]]:
    with psycopg.connect(database_url) as conn:
        return [(e, int(d)) for e, d in conn.execute(
            "SELECT provider_event_id, delivery_id FROM deliveries WHERE provider_event_id = ANY(%s)"
            " ORDER BY delivery_id", (event_ids,))]


async def test_a_committed_delivery_sent_again_is_a_duplicate_from_redis_and_stored_once(
    db: Database, database_url: str, redis_url: str
) -> None:
    redis = aioredis.Redis.from_url(redis_url)
    namespace = f"gc-{uuid.uuid4().hex[:8]}"
    committer = GroupCommitter(db, redis, window_ms=2)
    committer.start()
    try:
        ids = [f"evt_gc_{uuid.uuid4().hex[:12]}" for _ in range(30)]
        first = await committer.submit_many([_delivery(e, namespace) for e in ids])
        keys = [f"payrisk:dlv:{namespace}:stripe:{e}" for e in ids]
        assert await redis.mget(keys) == [b"c"] * 30  # marked committed by the batch's one scripted call
        again = await asyncio.gather(*(committer.submit(_delivery(e, namespace)) for e in ids[:10]))
        more = await committer.submit_many([_delivery(e, namespace) for e in ids[10:20]])
    finally:
        await committer.stop()
        await redis.aclose()
    assert all(not s.duplicate and s.delivery_id for s in first)
    assert all(s.duplicate and s.delivery_id is None for s in [*again, *more])
    assert committer.redis_errors == 0
    rows = _rows(database_url, ids)
    assert [e for e, _ in rows] == ids  # stored once each, in the burst's order
    assert [d for _, d in rows] == [s.delivery_id for s in first]


async def test_a_burst_does_not_wait_out_the_window_a_single_delivery_does(db: Database) -> None:
    committer = GroupCommitter(db, None, window_ms=300)  # a window far longer than a commit
    committer.start()
    try:
        began = time.monotonic()
        await committer.submit_many([_delivery(f"evt_gc_{uuid.uuid4().hex[:12]}", "") for _ in range(300)])
        burst = time.monotonic() - began  # 300 > one batch of 256: both batches skip the window
        began = time.monotonic()
        await committer.submit(_delivery(f"evt_gc_{uuid.uuid4().hex[:12]}", ""))
        single = time.monotonic() - began
    finally:
        await committer.stop()
    assert single >= 0.3  # the window waits for neighbours that may come
    assert burst < 0.3, burst  # nothing more is coming: no window at all


async def test_with_redis_unreachable_a_retry_is_still_a_duplicate_by_the_database(
    db: Database, database_url: str
) -> None:
    redis = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    committer = GroupCommitter(db, redis, window_ms=1)
    committer.start()
    try:
        ids = [f"evt_gc_{uuid.uuid4().hex[:12]}" for _ in range(5)]
        first = await committer.submit_many([_delivery(e, "ns") for e in ids])
        again = await committer.submit_many([_delivery(e, "ns") for e in ids])
    finally:
        await committer.stop()
        await redis.aclose()
    assert all(s.delivery_id for s in first)
    assert all(s.duplicate for s in again)
    assert committer.redis_errors >= 2  # claims and marks failed, and nothing was lost or stored twice
    assert len(_rows(database_url, ids)) == 5


async def test_an_answer_that_does_not_come_in_time_is_unavailable_and_the_late_commit_makes_a_retry_a_duplicate(
    db: Database, database_url: str
) -> None:
    committer = GroupCommitter(db, None, window_ms=1, answer_timeout=0.3, commit_timeout=30)
    committer.start()
    event_id = f"evt_gc_{uuid.uuid4().hex[:12]}"
    blocker = await psycopg.AsyncConnection.connect(database_url)
    try:
        await blocker.execute("LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE")  # PostgreSQL slow: inserts wait
        with pytest.raises(StoreUnavailable, match="not committed within"):
            await committer.submit(_delivery(event_id, "ns"))
        with pytest.raises(StoreUnavailable, match="not committed within"):
            await committer.submit_many([_delivery(f"{event_id}_b", "ns")])
        await blocker.rollback()  # PostgreSQL answers again: the waiting inserts commit
        for _ in range(100):
            if len(_rows(database_url, [event_id, f"{event_id}_b"])) == 2:
                break
            await asyncio.sleep(0.05)
        again = await committer.submit(_delivery(event_id, "ns"))
    finally:
        await blocker.close()
        await committer.stop()
    assert len(_rows(database_url, [event_id, f"{event_id}_b"])) == 2  # stored once each, though unanswered
    assert again.duplicate
