"""The access middleware (pure ASGI): every request to a non-public route needs a principal (401), the scope
its route needs (403), may name another tenant only as a platform principal (else 404: existence does not
leak), and — for a signed-in person — must carry the session's CSRF token on a state-changing request (403).
Successful state-changing requests are recorded in the audit trail before their answer leaves.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import parse_qs

import structlog
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.auth import policy
from gateway.auth.principal import Principal
from gateway.problems import problem_response

log = structlog.get_logger("payrisk.access")
MAX_BUFFERED = 4 * 1024 * 1024


class AccessMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or policy.is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        access = scope["app"].state.access
        request = Request(scope)
        principal, reason = await access.authenticate(request)
        if principal is None:
            await _refuse(scope, send, 401, "unauthorized", "Unauthorized", reason, {"WWW-Authenticate": "Bearer"})
            return
        template, params = policy.match_route(scope["app"].router.routes, scope)
        scope.setdefault("state", {})["principal"] = principal
        problem = _authorize(principal, scope["method"], template, _asked_tenant(request, params))
        if problem is not None:
            await _refuse(scope, send, *problem)
            return
        body, receive = await _buffer(receive) if scope["method"] not in policy.SAFE_METHODS else (b"", receive)
        if principal.kind == "session" and scope["method"] not in policy.SAFE_METHODS and not _csrf_ok(
                request, principal, body):
            await _refuse(scope, send, 403, "csrf", "Forbidden",
                          "a signed-in request that changes something must carry the session's CSRF token "
                          "(X-CSRF-Token header or csrf_token form field)")
            return
        asked = _asked_tenant(request, params)
        tenant = asked or principal.tenant
        cross = asked is not None and asked != principal.tenant
        if cross and scope["method"] in policy.SAFE_METHODS:
            await access.audit(principal, tenant, f"read {template}", target=scope["path"], cross_tenant=True)
        if scope["method"] in policy.SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        before = await access.before_state(template, tenant, params)
        await self.app(scope, receive, _auditing(send, scope, access, principal, tenant, template, body, before,
                                                 cross))


def _asked_tenant(request: Request, params: dict[str, Any]) -> str | None:
    asked = request.query_params.get("tenant") or params.get("tenant")
    return str(asked) if asked else None


def _authorize(principal: Principal, method: str, template: str | None, asked: str | None
               ) -> tuple[int, str, str, str] | None:
    need = policy.required_scope(method, template)
    if not principal.grants(need):
        return 403, "forbidden", "Forbidden", f"this route needs the {need!r} scope; the principal has " \
                                              f"{sorted(principal.scopes)}"
    if policy.platform_only(method, template) and not principal.platform:
        return 403, "forbidden", "Forbidden", "this route is for platform administrators"
    if asked is not None and asked != principal.tenant and not principal.platform:
        return 404, "not-found", "Not Found", f"no tenant {asked!r}"
    return None


async def _refuse(scope: Scope, send: Send, status: int, slug: str, title: str, detail: str,
                  headers: dict[str, str] | None = None) -> None:
    response = problem_response(status, slug, title, detail, scope["path"], headers)
    if policy.is_page(scope["path"]):
        from gateway.dashboard.render import refusal

        response = refusal(scope, status, title, detail)

    async def no_body() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    await response(scope, no_body, send)


async def _buffer(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole body (the edge limits already bound its size) and hand the app a receive that replays it."""
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return b"", receive
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
        if sum(len(c) for c in chunks) > MAX_BUFFERED:
            break
    body, sent = b"".join(chunks), False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _csrf_ok(request: Request, principal: Principal, body: bytes) -> bool:
    expected = principal.csrf_token or ""
    given = request.headers.get("x-csrf-token")
    if given is None and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        given = (parse_qs(body.decode("latin-1")).get("csrf_token") or [None])[0]
    origin = request.headers.get("origin")
    if origin is not None and origin not in ("null", _own_origin(request)):
        return False  # a browser says where the request came from: only our own pages may change anything
    return bool(expected) and given is not None and hmac.compare_digest(given, expected)


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"


def _auditing(send: Send, scope: Scope, access: Any, principal: Principal, tenant: str, template: str | None,
              body: bytes, before: Any, cross: bool) -> Send:
    """Wrap `send`: when a state-changing request succeeds, record it before the answer goes out (unless the
    endpoint recorded a richer event itself)."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start" and 200 <= message["status"] < 300 \
                and not scope.get("state", {}).get("audited"):
            try:
                await access.audit(principal, tenant, f"{scope['method']} {template}", target=scope["path"],
                                   before=before, after=access.body_for_audit(body), cross_tenant=cross)
            except Exception as exc:  # noqa: BLE001 - the change is committed; say loudly that its record is not
                log.error("audit.write_failed", principal=principal.label, path=scope["path"],
                          error=type(exc).__name__)
        await send(message)

    return wrapped
