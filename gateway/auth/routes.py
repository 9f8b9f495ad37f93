"""The sign-in pages: `/auth/login` → provider → `/auth/callback` → session cookie; `/auth/session` (who am I,
with the sign-out form); `POST /auth/logout` (CSRF-checked by the middleware like every state-changing form)."""

from __future__ import annotations

import html

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from gateway.auth import cookies
from gateway.auth.oidc import SignInError, map_identity
from gateway.auth.principal import principal_of
from gateway.problems import ProblemError
from store import audit as audit_store
from store import sessions as session_store
from store import tenant_records

log = structlog.get_logger("payrisk.access")


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _oidc(request: Request) -> object:
    access = request.app.state.access
    if access.oidc is None:
        raise ProblemError(404, "not-found", "Not Found", "OpenID Connect sign-in is not configured (OIDC_ISSUER)")
    return access.oidc


def _safe_next(value: str | None) -> str:
    """Only a path of this site (never `//host` or a URL): no open redirect after sign-in."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/auth/session"


async def login(request: Request) -> Response:
    oidc = _oidc(request)
    access = request.app.state.access
    redirect_uri = access.settings.auth.oidc_redirect_url or str(request.url_for("oidc_callback"))
    try:
        url, binding = await oidc.begin(request.app.state.platform.redis,  # type: ignore[attr-defined]
                                        redirect_uri, _safe_next(request.query_params.get("next")))
    except SignInError as exc:
        raise ProblemError(502, "sign-in-unavailable", "Sign-in unavailable", str(exc)) from None
    response = RedirectResponse(url, status_code=302)
    response.headers.append("Set-Cookie", cookies.cookie_header(cookies.LOGIN_COOKIE, binding, max_age=600,
                                                                secure=_secure(request), path="/auth"))
    return response


async def callback(request: Request) -> Response:
    oidc = _oidc(request)
    access = request.app.state.access
    params = request.query_params
    if "error" in params:
        raise ProblemError(400, "sign-in-refused", "Sign-in refused",
                           f"the provider answered {params['error'][:100]!r}")
    if not params.get("state") or not params.get("code"):
        raise ProblemError(400, "sign-in-failed", "Sign-in failed", "the callback needs `state` and `code`")
    try:
        who, next_path = await oidc.finish(request.app.state.platform.redis,  # type: ignore[attr-defined]
                                           params["state"], params["code"], request.cookies.get(cookies.LOGIN_COOKIE))
    except SignInError as exc:
        log.info("signin.failed", reason=str(exc))
        raise ProblemError(400, "sign-in-failed", "Sign-in failed", str(exc)) from None
    grant = map_identity(oidc.rules, who)  # type: ignore[attr-defined]
    if grant is None:
        log.info("signin.not_mapped", subject=who.subject)
        raise ProblemError(403, "not-allowed", "Not allowed",
                           "you signed in, but no tenant is mapped to your groups or email (OIDC_MAPPING)")
    async with access.db.transaction() as conn:
        if await tenant_records.get(conn, grant.tenant) is None:
            raise ProblemError(403, "not-allowed", "Not allowed", "the tenant your mapping names does not exist")
        session_id, _ = await session_store.create(conn, tenant=grant.tenant, subject=who.subject, email=who.email,
                                                   role=grant.role, platform=grant.platform,
                                                   ttl_seconds=access.settings.auth.session_ttl_seconds)
        await audit_store.record(conn, tenant=grant.tenant, principal=f"user:{who.subject}", via="web",
                                 action="session.signed_in", after={"role": grant.role, "platform": grant.platform})
    response = RedirectResponse(next_path, status_code=303)
    signed = cookies.sign(access.keyring.session_key(), session_id)
    response.headers.append("Set-Cookie", cookies.cookie_header(
        cookies.SESSION_COOKIE, signed, max_age=access.settings.auth.session_ttl_seconds, secure=_secure(request)))
    response.headers.append("Set-Cookie", cookies.cookie_header(cookies.LOGIN_COOKIE, "", max_age=0,
                                                                secure=_secure(request), path="/auth"))
    return response


async def session(request: Request) -> Response:
    """Who the request is (any principal); a page with the sign-out form for people, JSON otherwise."""
    principal = principal_of(request)
    about = {"principal": principal.label, "kind": principal.kind, "tenant": principal.tenant,
             "scopes": sorted(principal.scopes), "platform": principal.platform}
    if "text/html" not in request.headers.get("accept", "") or principal.csrf_token is None:
        return Response(orjson.dumps(about), media_type="application/json")
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td id='{k}'>{html.escape(str(v))}</td></tr>"
                   for k, v in about.items())
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>payrisk — signed in</title></head><body>"
            f"<h1>Signed in</h1><table>{rows}</table>"
            f"<form method='post' action='/auth/logout'><input type='hidden' name='csrf_token' "
            f"value='{html.escape(principal.csrf_token)}'><button type='submit' id='sign-out'>Sign out</button>"
            f"</form></body></html>")
    return HTMLResponse(page, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                       "Content-Security-Policy": "default-src 'none'; form-action 'self'"})


async def logout(request: Request) -> Response:
    """End the session (the middleware checked its CSRF token) and clear the cookie."""
    principal = principal_of(request)
    access = request.app.state.access
    if principal.kind == "session":
        session_id = cookies.unsign(access.keyring.session_key(), request.cookies.get(cookies.SESSION_COOKIE))
        async with access.db.transaction() as conn:
            if session_id is not None:
                await session_store.revoke(conn, session_id)
            await audit_store.record(conn, tenant=principal.tenant, principal=principal.label, via="web",
                                     action="session.signed_out")
        request.scope["state"]["audited"] = True
    response = HTMLResponse("<!doctype html><html><body><h1 id='signed-out'>Signed out</h1></body></html>",
                            headers={"Cache-Control": "no-store"})
    response.headers.append("Set-Cookie", cookies.cookie_header(cookies.SESSION_COOKIE, "", max_age=0,
                                                                secure=_secure(request)))
    return response


ROUTES = [
    Route("/auth/login", login, methods=["GET"]),
    Route("/auth/callback", callback, methods=["GET"], name="oidc_callback"),
    Route("/auth/session", session, methods=["GET"]),
    Route("/auth/logout", logout, methods=["POST"]),
]
