"""Signing in to the dashboard: the OpenID Connect session (`/auth/login`), or — for a single-user install — an API
key pasted once into `/dashboard/login`, which starts the same kind of server-side session (role from the key's
scope, CSRF token, expiry). The key itself is never stored in the browser."""

from __future__ import annotations

from urllib.parse import parse_qs, quote

import structlog
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gateway.auth import cookies
from gateway.auth.routes import _safe_next
from gateway.dashboard.render import ENV, _headers
from store import audit as audit_store
from store import keys as key_store
from store import sessions as session_store

log = structlog.get_logger("payrisk.access")
#: the key's widest scope → the session's role
_ROLE_OF_SCOPE = (("admin", "admin"), ("write", "operator"), ("read", "viewer"))


def _next(request: Request, fallback: str = "/dashboard") -> str:
    target = _safe_next(request.query_params.get("next"))
    return target if target != "/auth/session" else fallback


def _form(request: Request, status: int = 200, error: str | None = None) -> HTMLResponse:
    access = request.app.state.access
    body = ENV.get_template("login.html").render(
        next=_next(request), next_quoted=quote(_next(request), safe=""), error=error,
        oidc=access.oidc is not None, key_signin=access.keyring.configured, principal=None, csrf="",
        path=request.url.path)
    return HTMLResponse(body, status_code=status, headers=_headers(request.url.path))


async def login_form(request: Request) -> Response:
    return _form(request)


async def login(request: Request) -> Response:
    """Sign in with an API key: a session for the key's tenant, with the role of its widest scope."""
    access = request.app.state.access
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host', '')}":
        return _form(request, 403, "This sign-in came from another site and was refused.")
    if not access.keyring.configured:
        return _form(request, 409, "API-key sign-in needs PAYRISK_SECRET_KEY (it signs the session cookie).")
    key = (parse_qs((await request.body()).decode("latin-1")).get("api_key") or [""])[0].strip()
    async with access.db.transaction() as conn:
        checked = await key_store.check(conn, key) if key else None
        if checked is None or checked.row is None:
            log.info("signin.key_refused", status=checked.status if checked else "empty")
            return _form(request, 401, "That API key is not valid (or was revoked, or has expired).")
        row = checked.row
        role = next(r for scope, r in _ROLE_OF_SCOPE if scope in row["scopes"] or scope == "read")
        # the session names its key: revoking the key (or its expiry) ends the session at once
        session_id, _ = await session_store.create(conn, tenant=row["tenant_id"], subject=row["key_id"], email=None,
                                                   role=role, platform=row["platform"], api_key_id=row["key_id"],
                                                   ttl_seconds=access.settings.auth.session_ttl_seconds)
        await audit_store.record(conn, tenant=row["tenant_id"], principal=f"user:{row['key_id']}", via="web",
                                 action="session.signed_in",
                                 after={"role": role, "platform": row["platform"], "with": "api_key"})
    response = RedirectResponse(_next(request), status_code=303)
    secure = request.url.scheme == "https"
    response.headers.append("Set-Cookie", cookies.cookie_header(
        cookies.SESSION_COOKIE, cookies.sign(access.keyring.session_key(), session_id),
        max_age=access.settings.auth.session_ttl_seconds, secure=secure))
    return response
