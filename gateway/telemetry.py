"""Per-route request latency and status of every answer, and one request id per request.

A pure ASGI middleware, outermost, so refusals of the edge limits and the access check are measured too. The
route label is the matched route's template (`/webhooks/{provider}`), never the raw path: cardinality stays
bounded; anything no route matched is `unmatched`. The request id comes from the W3C `traceparent` header (its
trace id), else `X-Request-ID` (if sane), else a new one; it is bound into the log context for the request, echoed
back in `X-Request-ID`, and handed to the actors with each delivery (gateway/dispatch.py)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import structlog
from prometheus_client import Counter, Histogram
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: webhook acknowledgement latency is what on-call watches: fine buckets below 100 ms
LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUEST_SECONDS = Histogram("payrisk_http_request_duration_seconds",
                            "Time from request start to the answer's last byte, per route and status",
                            ["method", "route", "status"], buckets=LATENCY_BUCKETS)
REQUESTS = Counter("payrisk_http_requests_total", "Answered requests per route and status",
                   ["method", "route", "status"])

TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def request_id_of(headers: dict[bytes, bytes]) -> str:
    """The trace id of a valid `traceparent`, else a sane `X-Request-ID`, else a fresh id."""
    traceparent = headers.get(b"traceparent", b"").decode("latin-1").strip().lower()
    match = TRACEPARENT.match(traceparent)
    if match and match.group(1) != "0" * 32:
        return match.group(1)
    given = headers.get(b"x-request-id", b"").decode("latin-1").strip()
    if SANE_ID.match(given):
        return given
    return uuid.uuid4().hex


def route_of(scope: Scope) -> str:
    """The template of the route that answered; for a request refused before routing (edge limits, access
    control), the route it was meant for; `unmatched` when none matches the path."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    router = getattr(scope.get("app"), "router", None)
    partial = None
    for route in getattr(router, "routes", ()):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(route.path)
        if match == Match.PARTIAL and partial is None:
            partial = str(route.path)
    return partial or "unmatched"


class RequestTelemetry:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        request_id = request_id_of(headers)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        with request_context(request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                method = scope.get("method", "GET")
                labels = (method if method in METHODS else "OTHER", route_of(scope), str(status))
                REQUEST_SECONDS.labels(*labels).observe(time.perf_counter() - started)
                REQUESTS.labels(*labels).inc()


#: the request id of the request being answered (None outside one): read by the hand-off (gateway/dispatch.py)
REQUEST_ID: ContextVar[str | None] = ContextVar("payrisk_request_id", default=None)


@contextmanager
def request_context(request_id: str) -> Iterator[None]:
    """`request_id` in the log context (structlog) and in `REQUEST_ID` while a request is answered, set and reset
    by token: structlog's `bound_contextvars` copies the whole context to save and restore, and reading it back
    with `get_contextvars` copies it again — per request and per hand-off."""
    tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
    own = REQUEST_ID.set(request_id)
    try:
        yield
    finally:
        REQUEST_ID.reset(own)
        structlog.contextvars.reset_contextvars(**tokens)
