"""The PostgreSQL connection pool and explicit transactions."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from store.errors import StoreUnavailable, translate

Conn = psycopg.AsyncConnection[dict[str, Any]]


class Database:
    """An async pool of autocommit connections; `transaction()` opens an explicit transaction."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 8, timeout: float = 10.0) -> None:
        self.url = url
        self._pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            kwargs={"autocommit": True, "row_factory": dict_row},
        )

    async def open(self, wait: bool = True, timeout: float = 10.0) -> None:
        try:
            await self._pool.open(wait=wait, timeout=timeout)
        except PoolTimeout as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from None

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        """A pooled autocommit connection; psycopg errors leave as store errors."""
        try:
            async with self._pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            raise translate(exc) from exc
        except PoolTimeout as exc:
            raise StoreUnavailable(f"no PostgreSQL connection available: {exc}") from None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """One explicit transaction: committed when the block ends, rolled back on any error."""
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def ping(self) -> None:
        async with self.connection() as conn:
            await conn.execute("SELECT 1")


@asynccontextmanager
async def connect(url: str, timeout: int = 5) -> AsyncIterator[Conn]:
    """One short-lived autocommit connection outside any pool (CLI commands); psycopg errors leave as store
    errors, so a caller can print one line naming DATABASE_URL."""
    try:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row,
                                                     connect_timeout=timeout)
    except psycopg.Error as exc:
        raise translate(exc) from None
    try:
        async with conn:
            yield conn
    except psycopg.Error as exc:
        raise translate(exc) from exc


def probe(url: str, timeout: int = 5) -> dict[str, Any]:
    """Connect once, synchronously: `{server_version, migrated}` (migrated: the latest read model exists).
    Raises StoreError when PostgreSQL cannot be reached or refuses us."""
    try:
        with psycopg.connect(url, connect_timeout=timeout, row_factory=dict_row) as conn:
            row = conn.execute("SELECT current_setting('server_version') AS server_version,"
                               " to_regclass('case_facts') IS NOT NULL AS migrated").fetchone()
    except psycopg.Error as exc:
        raise translate(exc) from None
    return dict(row or {})


def create_database(server_url: str, name: str, *, if_missing: bool = True) -> bool:
    """Create database `name` on the server at `server_url`; False when it existed (and `if_missing`).
    Raises StoreError (translated), e.g. when the name is taken and `if_missing` is False."""
    from psycopg import sql

    try:
        with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as conn:
            if if_missing and conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return False
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise translate(exc) from None
    return True


def drop_database(server_url: str, name: str) -> None:
    """Drop database `name` (its connections closed first); a failure is ignored: this is cleanup."""
    from psycopg import sql

    with contextlib.suppress(psycopg.Error), psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
