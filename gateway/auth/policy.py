"""Which routes are public, and which scope every other route needs. Default: deny.

Public: the webhooks (their own signature check), `/healthz`, `/readyz`, and the two legs of OIDC sign-in.
Everything else needs a principal; an unknown path too (so a 401 never tells which paths exist).
"""

from __future__ import annotations

from starlette.routing import Match, Route
from starlette.types import Scope

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC = frozenset({"/healthz", "/readyz", "/auth/login", "/auth/callback", "/dashboard/login"})
#: the dashboard's static files are the same for everyone (the sign-in page needs its stylesheet)
PUBLIC_PREFIXES = ("/webhooks/", "/dashboard/static/")
#: routes that change what a tenant is, or read its raw personal data: `admin`
ADMIN = frozenset({
    ("PUT", "/api/tenants/{tenant}/classification-overrides"),
    ("POST", "/api/customers/{customer_id}/forget"),
})
#: state-changing routes any principal may use (signing out changes only the caller's own session)
ANY_SCOPE = frozenset({("POST", "/auth/logout")})
#: routes about the installation rather than one tenant: platform principals only
PLATFORM = frozenset({("POST", "/api/admin/tenants"), ("GET", "/metrics")})


def is_public(path: str) -> bool:
    return path in PUBLIC or path.startswith(PUBLIC_PREFIXES)


def is_page(path: str) -> bool:
    """HTML pages for people: a refusal is a sign-in redirect or a readable page, not problem JSON."""
    return path in ("/dashboard", "/docs") or path.startswith("/dashboard/")


def required_scope(method: str, template: str | None) -> str:
    if template is not None and (template.startswith("/api/admin/") or template == "/metrics"
                                 or (method, template) in ADMIN):
        return "admin"
    return "read" if method in SAFE_METHODS or (method, template) in ANY_SCOPE else "write"


def platform_only(method: str, template: str | None) -> bool:
    return (("GET" if method == "HEAD" else method), template) in PLATFORM


def match_route(routes: list[Route], scope: Scope) -> tuple[str | None, dict[str, object]]:
    """The route template the request matches (or matches but for its method), and its path parameters."""
    partial: tuple[str | None, dict[str, object]] = (None, {})
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            return route.path, dict(child.get("path_params", {}))
        if match is Match.PARTIAL and partial[0] is None:
            partial = (route.path, dict(child.get("path_params", {})))
    return partial
