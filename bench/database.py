"""The benchmark's own PostgreSQL database (created fresh, dropped at the end) and its Redis db number."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
import redis

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_URL = "redis://127.0.0.1:6379/11"  # a db of its own; only keys this suite wrote are deleted


def url(dbname: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}"


@contextlib.contextmanager
def fresh_database(dbname: str) -> Iterator[str]:
    """Create `dbname` (dropping a leftover), yield its URL, drop it afterwards."""
    _admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{dbname}"')
    try:
        yield url(dbname)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def _admin(sql: str) -> None:
    with psycopg.connect(url("postgres"), autocommit=True) as conn:
        conn.execute(sql.encode())


def execute(database_url: str, sql: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.encode())


def delete_redis_keys(pattern: str) -> int:
    """Delete this suite's idempotency keys (SCAN + UNLINK, never FLUSHDB: the server is shared)."""
    client = redis.Redis.from_url(REDIS_URL)
    removed = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            removed += _count(client.unlink(*batch))
            batch = []
    if batch:
        removed += _count(client.unlink(*batch))
    client.close()
    return removed


def _count(reply: Any) -> int:
    """redis-py types sync and async replies alike; the sync client answers an int."""
    return int(reply)
