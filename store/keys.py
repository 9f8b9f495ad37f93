"""API keys: random, shown once, stored as a SHA-256 hash under a visible prefix (`key_id`).

A key looks like `prk_1a2b3c4d_<43 random characters>`: `prk_1a2b3c4d` is its id (listed, logged, audited), the
rest 256 bits of randomness, so a plain SHA-256 is enough (no password stretching needed for such entropy).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from store import sessions
from store.db import Conn

SCOPES = ("read", "write", "admin")
_ID_LEN = len("prk_") + 8
_COLUMNS = "key_id, tenant_id, scopes, platform, name, created_by, created_at, expires_at, revoked_at, last_used_at"


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """What a presented key turned out to be: `ok` (with its row), `revoked`, `expired` or `invalid`."""

    status: str
    row: dict[str, Any] | None = None


def _hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_id_of(key: str) -> str | None:
    """The id part of a presented key, or None when it does not look like one of ours."""
    if len(key) < _ID_LEN + 20 or not key.startswith("prk_") or key[_ID_LEN] != "_":
        return None
    return key[:_ID_LEN]


async def create(conn: Conn, tenant: str, scopes: list[str], *, created_by: str, name: str = "",
                 platform: bool = False, expires_at: datetime | None = None) -> tuple[dict[str, Any], str]:
    """A new key for `tenant`; returns its row and the key itself (the only time it exists in clear)."""
    key_id = f"prk_{secrets.token_hex(4)}"
    key = f"{key_id}_{secrets.token_urlsafe(32)}"
    cur = await conn.execute(
        f"INSERT INTO api_keys (key_id, tenant_id, key_hash, scopes, platform, name, created_by, expires_at)"
        f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
        (key_id, tenant, _hash(key), sorted(set(scopes)), platform, name, created_by, expires_at))
    row = await cur.fetchone()
    assert row is not None
    return row, key


async def check(conn: Conn, key: str) -> KeyCheck:
    """Authenticate a presented key (constant-time hash comparison); records its use at most once a minute."""
    key_id = key_id_of(key)
    if key_id is None:
        return KeyCheck("invalid")
    cur = await conn.execute(f"SELECT key_hash, now() > expires_at AS expired, {_COLUMNS} FROM api_keys"
                             " WHERE key_id = %s", (key_id,))
    row = await cur.fetchone()
    if row is None or not hmac.compare_digest(bytes(row.pop("key_hash")), _hash(key)):
        return KeyCheck("invalid")
    if row["revoked_at"] is not None:
        return KeyCheck("revoked")
    if row.pop("expired"):
        return KeyCheck("expired")
    await conn.execute("UPDATE api_keys SET last_used_at = now() WHERE key_id = %s"
                       " AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds')", (key_id,))
    return KeyCheck("ok", row)


async def list_keys(conn: Conn, tenant: str | None) -> list[dict[str, Any]]:
    """The keys of `tenant` (every tenant's for None), newest first; never the hash."""
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE %(t)s::text IS NULL OR tenant_id = %(t)s"
                             " ORDER BY created_at DESC, key_id", {"t": tenant})
    return await cur.fetchall()


async def get(conn: Conn, key_id: str, tenant: str | None) -> dict[str, Any] | None:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = %(k)s"
                             " AND (%(t)s::text IS NULL OR tenant_id = %(t)s)", {"k": key_id, "t": tenant})
    return await cur.fetchone()


async def revoke(conn: Conn, key_id: str, tenant: str | None) -> dict[str, Any] | None:
    """Revoke a key of `tenant` (any tenant's for None), and end the dashboard sessions signed in with it;
    idempotent. None when there is no such key."""
    cur = await conn.execute(
        f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = %(k)s"
        f" AND (%(t)s::text IS NULL OR tenant_id = %(t)s) RETURNING {_COLUMNS}", {"k": key_id, "t": tenant})
    row = await cur.fetchone()
    if row is not None:
        # the session lookup checks the key on every request anyway; this makes the end visible in the rows
        await sessions.revoke_for_key(conn, key_id)
    return row
