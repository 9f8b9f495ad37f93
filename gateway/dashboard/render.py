"""Rendering the dashboard: one Jinja2 environment (autoescaped), the page response with its security headers,
readable error pages, and the filters that turn stored values into what a person reads (money in minor units,
rates, durations, times in a given zone)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import Scope

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
#: scripts and styles from this site only; no inline script; pages may not be framed
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
#: the API reference's viewer sets inline styles on the elements it builds
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
_ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd",
                           "vuv", "xaf", "xof", "xpf"})  # fmt: skip

ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                         trim_blocks=True, lstrip_blocks=True)  # a field older state lacks renders empty


def money(amount: Any, currency: str | None) -> str:
    """Minor units as a person reads them: `1,234.50 USD` (zero-decimal currencies have no fraction)."""
    code = (currency or "").lower()
    value = int(amount or 0)
    text = f"{value:,}" if code in _ZERO_DECIMAL else f"{value / 100:,.2f}"
    return f"{text} {code.upper()}".strip()


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f} %"


def duration(seconds: float | None) -> str:
    """`3 d 4 h`, `2 h 5 min`, `40 s`."""
    if seconds is None:
        return "—"
    s = int(seconds)
    if s >= 86_400:
        return f"{s // 86_400} d {s % 86_400 // 3600} h"
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 60} min" if s >= 60 else f"{s} s"


def when(value: Any, zone: str | None = None) -> str:
    """An ISO time (or datetime) in `zone` (UTC when unknown), with the zone's name."""
    if not value:
        return "—"
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    try:
        tz = ZoneInfo(zone) if zone else UTC
    except (ZoneInfoNotFoundError, ValueError):
        tz = UTC
    local = at.astimezone(tz)
    return f"{local:%Y-%m-%d %H:%M} {zone or 'UTC'}"


ENV.filters.update(money=money, percent=percent, duration=duration, when=when, urlquote=lambda v: quote(str(v)))
#: each operator form carries its own request id: a double submit is one command (actors/domain/operator.py)
ENV.globals["new_request_id"] = lambda: secrets.token_urlsafe(12)


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A dashboard page: the signed-in principal and its CSRF token are in every template."""
    from gateway.auth import principal_of

    principal = principal_of(request)
    body = ENV.get_template(template).render(request=request, principal=principal, csrf=principal.csrf_token or "",
                                             path=request.url.path, **context)
    return HTMLResponse(body, status_code=status, headers=_headers(request.url.path))


def error_page(scope: Scope, status: int, title: str, detail: str) -> HTMLResponse:
    """A readable error page (pages never answer problem JSON)."""
    body = ENV.get_template("error.html").render(status=status, title=title, detail=detail, principal=None,
                                                 path=scope["path"], csrf="")
    return HTMLResponse(body, status_code=status, headers=_headers(scope["path"]))


def refusal(scope: Scope, status: int, title: str, detail: str) -> Response:
    """What a page answers when the access middleware refuses: sign-in first (401), else an error page."""
    if status == 401 and scope["method"] in ("GET", "HEAD"):
        target = scope["path"] + (f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else "")
        return RedirectResponse(f"/dashboard/login?next={quote(target, safe='')}", status_code=303,
                                headers={"Cache-Control": "no-store"})
    return error_page(scope, status, title, detail)


def _headers(path: str) -> dict[str, str]:
    return {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin", "Content-Security-Policy": DOCS_CSP if path == "/docs" else CSP}
