"""`GET /api/admin/audit`: the operator audit trail of the caller's tenant (a platform principal: every tenant's
without `?tenant=`), oldest first, paged with `after=<next_after>`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin.common import int_param, json_response
from gateway.admin.keys import _listed_tenant
from store import audit as audit_store


async def list_audit(request: Request) -> Response:
    limit = max(1, int_param(request, "limit", 100, 1000))
    after = int_param(request, "after", 0, 2**62)
    action = request.query_params.get("action")
    async with request.app.state.platform.db.connection() as conn:
        rows = await audit_store.list_events(conn, _listed_tenant(request), after=after, limit=limit, action=action)
    return json_response({"data": rows, "next_after": rows[-1]["audit_id"] if len(rows) == limit else None})


ROUTES = [Route("/api/admin/audit", list_audit, methods=["GET"])]
