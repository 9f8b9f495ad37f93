"""RFC 9457 problem details: every error the gateway returns says what went wrong and why."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

PROBLEM_TYPE_BASE = "https://payrisk.dev/problems/"


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
                     **extra: Any) -> Response:
    body: dict[str, Any] = {"type": PROBLEM_TYPE_BASE + slug, "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(extra)
    return Response(orjson.dumps(body), status_code=status, media_type="application/problem+json")


async def handle_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem_response(exc.status, exc.slug, exc.title, exc.detail, request.url.path, **exc.extra)


async def handle_not_found(request: Request, exc: Exception) -> Response:
    return problem_response(404, "not-found", "Not Found", f"no route for {request.method} {request.url.path}",
                            request.url.path)


async def handle_method_not_allowed(request: Request, exc: Exception) -> Response:
    return problem_response(405, "method-not-allowed", "Method Not Allowed",
                            f"{request.method} is not allowed on {request.url.path}", request.url.path)


async def handle_server_error(request: Request, exc: Exception) -> Response:
    return problem_response(500, "internal", "Internal Server Error",
                            "the request could not be completed; nothing was acknowledged", request.url.path)
