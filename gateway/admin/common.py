"""Helpers the admin endpoints share: JSON answers, a validated JSON body, the caller's audit."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from gateway.auth import principal_of
from gateway.jsonbody import dumps
from gateway.problems import ProblemError

M = TypeVar("M", bound=BaseModel)


def json_response(value: Any, status: int = 200) -> Response:
    return Response(dumps(value), status_code=status, media_type="application/json")


async def parse_body(request: Request, model: type[M]) -> M:
    """The body validated by `model` (unknown fields, NUL characters and oversize values refused), or a 400
    problem naming the field."""
    try:
        raw = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise ProblemError(400, "invalid-body", "Body is not JSON", str(exc)) from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "body"
        raise ProblemError(400, "invalid-body", "Invalid request", f"{field}: {error['msg']}", field=field) from None


async def audit(request: Request, tenant: str, action: str, conn: Any, *, target: str | None = None,
                before: Any = None, after: Any = None) -> None:
    """Record the caller's change in the same transaction as the change itself."""
    await request.app.state.access.audit(principal_of(request), tenant, action, target=target, before=before,
                                         after=after, conn=conn)
    request.scope["state"]["audited"] = True


def int_param(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19) or int(raw) > high:
        raise ProblemError(400, "invalid-parameter", "Invalid parameter",
                           f"{name} must be an integer between 0 and {high}, got {raw!r}", parameter=name)
    return int(raw)
