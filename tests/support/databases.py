"""A database of a test module's own, migrated by the real runner and dropped afterwards, and a pool on it with the
outbox emptied (the dispatcher claims every due row, whoever wrote it)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from store import Database
from store.db import create_database, drop_database
from store.migrate import apply_migrations


@contextmanager
def own_database(server_url: str, prefix: str) -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    create_database(server_url, name, if_missing=False)
    url = server_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        apply_migrations(url)
        yield url
    finally:
        drop_database(server_url, name)


@asynccontextmanager
async def empty_outbox(url: str) -> AsyncIterator[Database]:
    pool = Database(url, max_size=4)
    await pool.open()
    async with pool.connection() as conn:
        await conn.execute("TRUNCATE outbox, notifications")
    try:
        yield pool
    finally:
        await pool.close()
