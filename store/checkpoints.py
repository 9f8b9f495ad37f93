"""Checkpoints: a stream's folded state at a version, written in the decision's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from store.db import Conn
from store.jsonb import dumps


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


async def save_many(conn: Conn, rows: Sequence[tuple[str, str, int, dict[str, Any]]]) -> None:
    """Write each `(tenant, stream, version, state)` in one statement (a batch: one row per customer)."""
    if not rows:
        return
    await conn.execute(
        "INSERT INTO checkpoints (tenant_id, stream_id, version, state, updated_at)"
        " SELECT t, s, v, st::jsonb, now() FROM unnest(%b::text[], %b::text[], %b::int4[], %b::text[])"
        " AS r(t, s, v, st)"
        " ON CONFLICT (tenant_id, stream_id) DO UPDATE SET version = excluded.version, state = excluded.state,"
        " updated_at = now()",
        ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [dumps(r[3]) for r in rows]))


async def load_many(conn: Conn, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Checkpoint]:
    """The checkpoints of these (tenant, stream) keys that exist, in one statement."""
    if not keys:
        return {}
    cur = await conn.execute(
        "SELECT c.tenant_id, c.stream_id, c.version, c.state FROM unnest(%b::text[], %b::text[]) AS k(t, s)"
        " JOIN checkpoints c ON c.tenant_id = k.t AND c.stream_id = k.s", ([k[0] for k in keys], [k[1] for k in keys]))
    return {(r["tenant_id"], r["stream_id"]): Checkpoint(r["version"], r["state"]) for r in await cur.fetchall()}


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
