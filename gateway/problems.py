"""RFC 9457 problem details: every error the gateway returns says what went wrong and why."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response

from store import StoreUnavailable

PROBLEM_TYPE_BASE = "https://payrisk.dev/problems/"
#: seconds a client should wait after a 503 (providers back off on 503 + Retry-After)
RETRY_AFTER_SECONDS = 5

log = structlog.get_logger("payrisk.gateway")


class ProblemError(Exception):
    """Raised anywhere in a request; rendered once as application/problem+json."""

    def __init__(self, status: int, slug: str, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.extra = extra


def problem_response(status: int, slug: str, title: str, detail: str, instance: str | None = None,
                     headers: Mapping[str, str] | None = None, **extra: Any) -> Response:
    body: dict[str, Any] = {"type": PROBLEM_TYPE_BASE + slug, "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(extra)
    return Response(orjson.dumps(body), status_code=status, media_type="application/problem+json",
                    headers=dict(headers or {}))


async def handle_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.status == 503 else None
    return problem_response(exc.status, exc.slug, exc.title, exc.detail, request.url.path, headers, **exc.extra)


async def handle_unavailable(request: Request, exc: Exception) -> Response:
    """PostgreSQL is down or too slow: nothing was acknowledged, so say 503 and when to come back (fast)."""
    log.warning("request.store_unavailable", path=request.url.path, error=str(exc)[:200])
    return problem_response(503, "store-unavailable", "Service Unavailable",
                            "PostgreSQL is not reachable; nothing was stored or changed, try again later",
                            request.url.path, {"Retry-After": str(RETRY_AFTER_SECONDS)})


async def handle_disconnect(request: Request, exc: Exception) -> Response:
    """The client went away mid-body: one log line (never a traceback); nobody is there to read an answer."""
    log.info("request.client_disconnected", path=request.url.path, method=request.method)
    return problem_response(400, "client-disconnected", "Client Disconnected",
                            "the client closed the connection before the body was complete", request.url.path)


async def handle_server_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, StoreUnavailable):
        return await handle_unavailable(request, exc)
    return problem_response(500, "internal", "Internal Server Error",
                            "the request could not be completed; nothing was acknowledged", request.url.path)
