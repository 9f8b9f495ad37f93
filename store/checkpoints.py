"""Checkpoints: a stream's folded state at a version, written in the decision's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from store.db import Conn


@dataclass(frozen=True, slots=True)
class Checkpoint:
    version: int
    state: dict[str, Any]


async def save(conn: Conn, tenant_id: str, stream_id: str, version: int, state: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO checkpoints (tenant_id, stream_id, version, state, updated_at) VALUES (%s, %s, %s, %s, now())"
        " ON CONFLICT (tenant_id, stream_id) DO UPDATE SET version = excluded.version, state = excluded.state,"
        " updated_at = now()",
        (tenant_id, stream_id, version, Jsonb(state)),
    )


async def load(conn: Conn, tenant_id: str, stream_id: str) -> Checkpoint | None:
    cur = await conn.execute(
        "SELECT version, state FROM checkpoints WHERE tenant_id = %s AND stream_id = %s", (tenant_id, stream_id)
    )
    row = await cur.fetchone()
    return Checkpoint(version=row["version"], state=row["state"]) if row else None


async def row(conn: Conn, tenant_id: str, stream_id: str) -> dict[str, Any] | None:
    """The checkpoint with when it was written: `{version, state, updated_at}`."""
    cur = await conn.execute("SELECT version, state, updated_at FROM checkpoints WHERE tenant_id = %s"
                             " AND stream_id = %s", (tenant_id, stream_id))
    found: dict[str, Any] | None = await cur.fetchone()
    return found


def load_sync(url: str, tenant_id: str, stream_id: str) -> dict[str, Any] | None:
    """The checkpointed state, read with one short synchronous connection (for CLI commands); None if absent.
    Raises StoreError (translated) when PostgreSQL cannot be read."""
    import psycopg
    from psycopg.rows import dict_row

    from store.errors import translate

    try:
        with psycopg.connect(url, row_factory=dict_row, connect_timeout=5) as conn:
            found = conn.execute("SELECT state FROM checkpoints WHERE tenant_id = %s AND stream_id = %s",
                                 (tenant_id, stream_id)).fetchone()
    except psycopg.Error as exc:
        raise translate(exc) from None
    return dict(found["state"]) if found else None
