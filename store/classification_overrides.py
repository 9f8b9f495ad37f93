"""Each tenant's classification overrides (table `classification_overrides`, migration 0005).

Documents are validated before they are saved (`actors.domain.classification.loading.check_tenant_overrides`);
this module only reads and writes them. Every function takes a connection with any row factory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Jsonb


@dataclass(frozen=True, slots=True)
class StoredOverrides:
    tenant_id: str
    revision: int  # 0: the tenant never had overrides
    overrides: list[dict[str, Any]]
    updated_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "revision": self.revision,
                "updated_at": self.updated_at.isoformat() if self.updated_at else None, "overrides": self.overrides}


async def load(conn: AsyncConnection[Any], tenant_id: str) -> StoredOverrides:
    """The tenant's overrides (revision 0 and none when it never had any)."""
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute("SELECT revision, overrides, updated_at FROM classification_overrides WHERE tenant_id = %s",
                      (tenant_id,))
    row = await cur.fetchone()
    if row is None:
        return StoredOverrides(tenant_id, 0, [], None)
    return StoredOverrides(tenant_id, int(row[0]), list(row[1]), row[2])


async def changed(conn: AsyncConnection[Any], tenant_id: str, known: int) -> tuple[int, list[dict[str, Any]] | None]:
    """The tenant's revision, and its documents only when the revision is not `known` (one cheap query)."""
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute("SELECT revision, CASE WHEN revision = %s THEN NULL ELSE overrides END"
                      " FROM classification_overrides WHERE tenant_id = %s", (known, tenant_id))
    row = await cur.fetchone()
    if row is None:
        return 0, None if known == 0 else []
    return int(row[0]), None if row[1] is None else list(row[1])


async def save(conn: AsyncConnection[Any], tenant_id: str, overrides: list[dict[str, Any]]) -> StoredOverrides:
    """Replace the tenant's overrides (an empty list clears them); the revision goes up by one."""
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(
        "INSERT INTO classification_overrides (tenant_id, revision, overrides) VALUES (%s, 1, %s)"
        " ON CONFLICT (tenant_id) DO UPDATE SET revision = classification_overrides.revision + 1,"
        " overrides = EXCLUDED.overrides, updated_at = now()"
        " RETURNING revision, overrides, updated_at", (tenant_id, Jsonb(overrides)))
    row = await cur.fetchone()
    assert row is not None
    return StoredOverrides(tenant_id, int(row[0]), list(row[1]), row[2])


async def stored(conn: AsyncConnection[Any], tenant_id: str) -> dict[str, Any] | None:
    """The stored row as it is (`{revision, overrides}`), None when the tenant has none (the audit's `before`)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT revision, overrides FROM classification_overrides WHERE tenant_id = %s", (tenant_id,))
    row = await cur.fetchone()
    return dict(row) if row else None
