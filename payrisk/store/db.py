"""The PostgreSQL connection pool and explicit transactions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from payrisk.store.errors import StoreUnavailable, translate

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

    @property
    def pool(self) -> AsyncConnectionPool[Conn]:
        """The underlying pool, for components that run their own SQL (the notifier's dispatcher)."""
        return self._pool

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
