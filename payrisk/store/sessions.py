"""Web sessions of people signed in with OpenID Connect. The cookie carries a random id; the row holds its
SHA-256, the principal (tenant, role) and the session's CSRF token. Sign-out revokes the row."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from payrisk.store.db import Conn


def _hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


async def create(conn: Conn, *, tenant: str, subject: str, email: str | None, role: str, platform: bool,
                 ttl_seconds: int) -> tuple[str, str]:
    """A new session; returns (session id for the cookie, CSRF token)."""
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO web_sessions (session_hash, tenant_id, subject, email, role, platform, csrf_token, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s))",
        (_hash(session_id), tenant, subject, email, role, platform, csrf, ttl_seconds))
    return session_id, csrf


async def lookup(conn: Conn, session_id: str) -> dict[str, Any] | None:
    """The live session (not revoked, not expired), or None."""
    cur = await conn.execute(
        "SELECT tenant_id, subject, email, role, platform, csrf_token, expires_at FROM web_sessions"
        " WHERE session_hash = %s AND revoked_at IS NULL AND expires_at > now()", (_hash(session_id),))
    return await cur.fetchone()


async def revoke(conn: Conn, session_id: str) -> None:
    await conn.execute("UPDATE web_sessions SET revoked_at = coalesce(revoked_at, now()) WHERE session_hash = %s",
                       (_hash(session_id),))
