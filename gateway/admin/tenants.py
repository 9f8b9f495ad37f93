"""`/api/admin/tenants`: tenants as first-class objects. A platform principal lists and creates them; a tenant's
admin reads and changes its own. Secrets are write-only: stored encrypted, answered masked (`sk_test_…4242`)."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin.common import audit, json_response, parse_body
from gateway.auth import principal_of
from gateway.problems import ProblemError
from store import tenant_records, tenant_secrets
from store.secrets import Keyring, SecretKeyError
from store.tenant_model import TENANT_ID, TenantChange, masked_secrets


class NewTenant(TenantChange):
    model_config = ConfigDict(extra="forbid", frozen=True)
    tenant_id: str = Field(pattern=TENANT_ID.pattern)




async def view(conn: Any, keyring: Keyring, row: dict[str, Any]) -> dict[str, Any]:
    """A tenant as answers show it: its row, and its secrets masked."""
    try:
        secrets = await tenant_secrets.all_of(conn, keyring, row["tenant_id"]) if keyring.configured else {}
    except SecretKeyError:
        secrets = {}
    return {**row, "secrets": masked_secrets(secrets)}


async def list_tenants(request: Request) -> Response:
    principal = principal_of(request)
    keyring = request.app.state.access.keyring
    async with request.app.state.platform.db.connection() as conn:
        rows = await tenant_records.list_all(conn, None if principal.platform else principal.tenant)
        return json_response({"data": [await view(conn, keyring, row) for row in rows]})


async def create_tenant(request: Request) -> Response:
    body = await parse_body(request, NewTenant)
    if body.name is None:
        raise ProblemError(400, "invalid-body", "Invalid request", "name: required", field="name")
    async with request.app.state.platform.db.transaction() as conn:
        row = await tenant_records.create(conn, body.tenant_id, body.name, body.retry_mode or "own",
                                          {k: v for k, v in body.settings_changes().items() if k != "tenant_id"})
        if row is None:
            raise ProblemError(409, "conflict", "Conflict", f"tenant {body.tenant_id!r} exists")
        await _store_secrets(request, conn, body.tenant_id, body.secret_changes())
        shown = await view(conn, request.app.state.access.keyring, row)
        await audit(request, body.tenant_id, "tenant.created", conn, target=body.tenant_id, after=shown)
    return json_response(shown, status=201)


async def _store_secrets(request: Request, conn: Any, tenant: str, changes: dict[str, Any]) -> None:
    keyring = request.app.state.access.keyring
    if changes and not keyring.configured:
        raise ProblemError(409, "no-secret-key", "Secrets cannot be stored",
                           "set PAYRISK_SECRET_KEY (secrets are stored encrypted with it)")
    for name, value in changes.items():
        await tenant_secrets.put(conn, keyring, tenant, name, value)


async def get_tenant(request: Request) -> Response:
    tenant = request.path_params["tenant"]
    async with request.app.state.platform.db.connection() as conn:
        row = await tenant_records.get(conn, tenant)
        if row is None:
            raise ProblemError(404, "not-found", "Not Found", f"no tenant {tenant!r}")
        return json_response(await view(conn, request.app.state.access.keyring, row))


async def update_tenant(request: Request) -> Response:
    tenant = request.path_params["tenant"]
    change = await parse_body(request, TenantChange)
    keyring = request.app.state.access.keyring
    async with request.app.state.platform.db.transaction() as conn:
        old = await tenant_records.get(conn, tenant, for_update=True)
        if old is None:
            raise ProblemError(404, "not-found", "Not Found", f"no tenant {tenant!r}")
        before = await view(conn, keyring, old)
        row = await tenant_records.update(conn, tenant, name=change.name, retry_mode=change.retry_mode,
                                          settings=change.settings_changes())
        await _store_secrets(request, conn, tenant, change.secret_changes())
        assert row is not None
        after = await view(conn, keyring, row)
        await audit(request, tenant, "tenant.updated", conn, target=tenant, before=before, after=after)
    request.app.state.platform.tenants.forget(tenant)
    return json_response(after)


ROUTES = [
    Route("/api/admin/tenants", list_tenants, methods=["GET"]),
    Route("/api/admin/tenants", create_tenant, methods=["POST"]),
    Route("/api/admin/tenants/{tenant}", get_tenant, methods=["GET"]),
    Route("/api/admin/tenants/{tenant}", update_tenant, methods=["PATCH"]),
]
