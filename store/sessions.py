"""Web sessions: people signed in with OpenID Connect, or with an API key pasted into the dashboard's sign-in.
The cookie carries a random id; the row holds its SHA-256, the principal (tenant, role) and the session's CSRF
token. Sign-out revokes the row.

A session started with an API key names the key (`api_key_id`) and lives only while the key does: every lookup
checks the key is neither revoked nor expired, and revoking the key ends its sessions too (store/keys.py).
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from store.db import Conn

_LIVE = """
SELECT s.tenant_id, s.subject, s.email, s.role, s.platform, s.csrf_token, s.expires_at, s.api_key_id
FROM web_sessions s LEFT JOIN api_keys k ON k.key_id = s.api_key_id
WHERE s.session_hash = %s AND s.revoked_at IS NULL AND s.expires_at > now()
  AND (s.api_key_id IS NULL OR (k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())))
"""


def _hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


async def create(conn: Conn, *, tenant: str, subject: str, email: str | None, role: str, platform: bool,
                 ttl_seconds: int, api_key_id: str | None = None) -> tuple[str, str]:
    """A new session; returns (session id for the cookie, CSRF token). With `api_key_id`, the session ends when
    that key is revoked or expires (and never outlives the key's expiry)."""
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO web_sessions (session_hash, tenant_id, subject, email, role, platform, csrf_token, expires_at,"
        " api_key_id) SELECT %(h)s, %(t)s, %(s)s, %(e)s, %(r)s, %(p)s, %(c)s,"
        " least(now() + make_interval(secs => %(ttl)s), (SELECT expires_at FROM api_keys WHERE key_id = %(k)s)),"
        " %(k)s",
        {"h": _hash(session_id), "t": tenant, "s": subject, "e": email, "r": role, "p": platform, "c": csrf,
         "ttl": ttl_seconds, "k": api_key_id})
    return session_id, csrf


async def lookup(conn: Conn, session_id: str) -> dict[str, Any] | None:
    """The live session (not revoked, not expired, and its API key — if it was started with one — still valid),
    or None."""
    cur = await conn.execute(_LIVE, (_hash(session_id),))
    return await cur.fetchone()


async def revoke(conn: Conn, session_id: str) -> None:
    await conn.execute("UPDATE web_sessions SET revoked_at = coalesce(revoked_at, now()) WHERE session_hash = %s",
                       (_hash(session_id),))


async def revoke_for_key(conn: Conn, key_id: str) -> int:
    """End every live session started with API key `key_id`; returns how many."""
    cur = await conn.execute("UPDATE web_sessions SET revoked_at = now() WHERE api_key_id = %s AND revoked_at IS NULL",
                             (key_id,))
    return cur.rowcount
