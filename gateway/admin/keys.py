"""`/api/admin/keys`: list, create (the key is in the answer once) and revoke API keys of the caller's tenant
(a platform principal: any tenant's, and may create platform keys)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin.common import audit, json_response, parse_body
from gateway.auth import principal_of, tenant_of
from gateway.problems import ProblemError
from store import keys as key_store


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    scopes: list[Literal["read", "write", "admin"]] = Field(min_length=1, max_length=3)
    name: str = Field(default="", max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")
    expires_at: datetime | None = None
    platform: bool = False


def _listed_tenant(request: Request) -> str | None:
    """Whose keys: the caller's tenant; a platform principal without `?tenant=` sees every tenant's."""
    principal = principal_of(request)
    return None if principal.platform and "tenant" not in request.query_params else tenant_of(request)


async def list_keys(request: Request) -> Response:
    async with request.app.state.platform.db.connection() as conn:
        rows = await key_store.list_keys(conn, _listed_tenant(request))
    return json_response({"data": rows})


async def create_key(request: Request) -> Response:
    body = await parse_body(request, NewKey)
    tenant = tenant_of(request)
    if body.platform and not principal_of(request).platform:
        raise ProblemError(403, "forbidden", "Forbidden", "only a platform principal may create platform keys")
    if body.expires_at is not None and body.expires_at.tzinfo is None:
        raise ProblemError(400, "invalid-body", "Invalid request", "expires_at: needs a time zone", field="expires_at")
    async with request.app.state.platform.db.transaction() as conn:
        row, key = await key_store.create(conn, tenant, list(body.scopes), created_by=principal_of(request).label,
                                          name=body.name, platform=body.platform, expires_at=body.expires_at)
        await audit(request, tenant, "key.created", conn, target=row["key_id"], after=row)
    return json_response({**row, "id": row["key_id"], "key": key}, status=201)


async def revoke_key(request: Request) -> Response:
    key_id = request.path_params["key_id"]
    async with request.app.state.platform.db.transaction() as conn:
        before = await key_store.get(conn, key_id, _listed_tenant(request))
        row = await key_store.revoke(conn, key_id, _listed_tenant(request))
        if row is None or before is None:
            raise ProblemError(404, "not-found", "Not Found", f"no key {key_id!r}")
        await audit(request, row["tenant_id"], "key.revoked", conn, target=key_id, before=before, after=row)
    return json_response(row)


ROUTES = [
    Route("/api/admin/keys", list_keys, methods=["GET"]),
    Route("/api/admin/keys", create_key, methods=["POST"]),
    Route("/api/admin/keys/{key_id}", revoke_key, methods=["DELETE"]),
]
