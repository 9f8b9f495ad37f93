"""`POST /api/customers/{customer_id}/forget` (`admin`): erase the customer's personal data, keep the amounts
and decisions the analytics need; recorded as a `CustomerForgotten` event and in the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from actors.domain.case import evolve
from gateway.admin.common import audit, json_response
from gateway.auth import tenant_of
from gateway.problems import ProblemError
from store.privacy import forget


async def forget_customer(request: Request) -> Response:
    customer_id, tenant = request.path_params["customer_id"], tenant_of(request)
    async with request.app.state.platform.db.transaction() as conn:
        erased = await forget(conn, tenant, customer_id, datetime.now(UTC).isoformat(), evolve)
        if erased is None:
            raise ProblemError(404, "not-found", "Not Found", f"no customer {customer_id!r} in this tenant")
        await audit(request, tenant, "customer.forgotten", conn, target=customer_id, after={"erased": erased})
    return json_response({"customer_id": customer_id, "erased": erased})


ROUTES = [Route("/api/customers/{customer_id}/forget", forget_customer, methods=["POST"])]
