"""A principal: an API key or a signed-in person, bound to one tenant, with scopes `read` < `write` < `admin`.

A platform principal may act for another tenant (`?tenant=`, or the tenant in the path); every such request is
recorded in the audit trail. Roles of people map onto scopes: viewer → read, operator → write, admin → admin.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

SCOPE_LEVEL = {"read": 1, "write": 2, "admin": 3}
ROLE_SCOPE = {"viewer": "read", "operator": "write", "admin": "admin"}


@dataclass(frozen=True, slots=True)
class Principal:
    kind: str  # "key" | "session"
    id: str  # key id (`prk_…`) or the person's OIDC subject; never an email or a secret
    tenant: str
    scopes: frozenset[str]
    platform: bool = False
    csrf_token: str | None = None  # sessions only: state-changing requests must present it

    @property
    def label(self) -> str:
        """How logs and the audit trail name this principal."""
        return f"key:{self.id}" if self.kind == "key" else f"user:{self.id}"

    @property
    def via(self) -> str:
        return "api" if self.kind == "key" else "web"

    def grants(self, scope: str) -> bool:
        """Scopes are levels: `admin` includes `write`, which includes `read`."""
        need = SCOPE_LEVEL[scope]
        return any(SCOPE_LEVEL.get(s, 0) >= need for s in self.scopes)


def principal_of(request: Request) -> Principal:
    """The request's principal, set by the access middleware (every non-public route has one)."""
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        raise RuntimeError(f"{request.url.path} was reached without a principal: is AccessMiddleware installed?")
    return principal


def tenant_of(request: Request) -> str:
    """The tenant the request acts for: the principal's, or (platform principals only, checked and recorded by
    the middleware) the one named by `?tenant=`."""
    principal = principal_of(request)
    asked = request.query_params.get("tenant")
    return asked if asked and principal.platform else principal.tenant
