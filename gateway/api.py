"""The REST API (read side): deliveries, customers and their trail."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.problems import ProblemError

_STATUSES = {"received", "dispatched", "applied", "ignored", "quarantined"}


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value, default=str), status_code=status, media_type="application/json")


def _tenant(request: Request) -> str:
    return request.query_params.get("tenant", "default")


async def list_deliveries(request: Request) -> Response:
    status = request.query_params.get("status")
    if status is not None and status not in _STATUSES:
        raise ProblemError(400, "invalid-parameter", "Invalid parameter",
                           f"status must be one of {sorted(_STATUSES)}, got {status!r}")
    limit = _int_param(request, "limit", 100, 1, 1000)
    after = _int_param(request, "after", 0, 0, 2**62)
    async with request.app.state.platform.db.connection() as conn:
        cur = await conn.execute(
            "SELECT delivery_id, tenant_id, provider, provider_event_id, event_type, customer_id, received_at,"
            " status, status_reason, dispatched_at, applied_at FROM deliveries"
            " WHERE tenant_id = %s AND (%s::text IS NULL OR status = %s) AND delivery_id > %s"
            " ORDER BY delivery_id LIMIT %s",
            (_tenant(request), status, status, after, limit))
        rows = await cur.fetchall()
    return _json({"data": rows, "next_after": rows[-1]["delivery_id"] if rows else None})


async def get_delivery(request: Request) -> Response:
    delivery_id = request.path_params["delivery_id"]
    async with request.app.state.platform.db.connection() as conn:
        cur = await conn.execute(
            "SELECT delivery_id, tenant_id, provider, provider_event_id, event_type, customer_id, received_at,"
            " status, status_reason, dispatched_at, applied_at, headers, convert_from(body, 'UTF8') AS body"
            " FROM deliveries WHERE tenant_id = %s AND delivery_id = %s", (_tenant(request), delivery_id))
        row = await cur.fetchone()
    if row is None:
        raise ProblemError(404, "not-found", "Not Found", f"no delivery {delivery_id}")
    return _json(row)


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ProblemError(400, "invalid-parameter", "Invalid parameter",
                           f"{name} must be an integer between {low} and {high}, got {raw!r}")
    return int(raw)


ROUTES = [
    Route("/api/deliveries", list_deliveries, methods=["GET"]),
    Route("/api/deliveries/{delivery_id:int}", get_delivery, methods=["GET"]),
]
