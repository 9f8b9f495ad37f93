"""Session cookies: a random session id, signed with HMAC-SHA256 under a key derived from PAYRISK_SECRET_KEY.

The signature makes a tampered cookie fail before any lookup; the id itself is only useful while its row in
`web_sessions` is live (sign-out revokes it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

SESSION_COOKIE = "payrisk_session"
LOGIN_COOKIE = "payrisk_login"


def _mac(key: bytes, value: str) -> str:
    digest = hmac.new(key, value.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(key: bytes, value: str) -> str:
    return f"{value}.{_mac(key, value)}"


def unsign(key: bytes, signed: str | None) -> str | None:
    """The value, or None when the cookie is missing, malformed or its signature does not match."""
    if not signed or "." not in signed or len(signed) > 512:
        return None
    value, mac = signed.rsplit(".", 1)
    return value if hmac.compare_digest(mac, _mac(key, value)) else None


def cookie_header(name: str, value: str, *, max_age: int, secure: bool, path: str = "/") -> str:
    """A Set-Cookie value: HttpOnly, SameSite=Lax (sent on the provider's top-level redirect back, never on
    cross-site sub-requests or form posts), Secure when served over TLS."""
    attrs = [f"{name}={value}", f"Path={path}", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax"]
    if secure:
        attrs.append("Secure")
    return "; ".join(attrs)
