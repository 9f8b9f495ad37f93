"""Per-route request latency and status of every answer, and one request id per request.

A pure ASGI middleware, outermost, so refusals of the edge limits and the access check are measured too. The
route label is the matched route's template (`/webhooks/{provider}`), never the raw path: cardinality stays
bounded; anything no route matched is `unmatched`. The request id comes from the W3C `traceparent` header (its
trace id), else `X-Request-ID` (if sane), else a new one; it is bound into the log context for the request, echoed
back in `X-Request-ID`, and handed to the actors with each delivery (gateway/dispatch.py)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from settings.logging import REQUEST_ID

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


def request_id_of(headers: Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]]) -> str:
    """The trace id of a valid `traceparent`, else a sane `X-Request-ID`, else a fresh id. `headers`: a mapping or
    an ASGI scope's list of (lower-case name, value) pairs."""
    traceparent = given = None
    for name, value in headers.items() if isinstance(headers, Mapping) else headers:
        if name == b"traceparent":
            traceparent = traceparent or value
        elif name == b"x-request-id":
            given = given or value
    if traceparent:
        match = TRACEPARENT.match(traceparent.decode("latin-1").strip().lower())
        if match and match.group(1) != "0" * 32:
            return match.group(1)
    if given:
        text = given.decode("latin-1").strip()
        if SANE_ID.match(text):
            return text
    return os.urandom(16).hex()  # 128 random bits, as uuid4 carries (a fifth of its cost)


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
        request_id = request_id_of(scope.get("headers") or ())
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
                observe(method if method in METHODS else "OTHER", route_of(scope), status,
                        time.perf_counter() - started)


def observe(method: str, route: str, status: int, seconds: float) -> None:
    """One answered request in the latency histogram and the request counter. The labelled children are kept
    (a few routes × methods × statuses): prometheus_client's `labels()` validates and locks on every call."""
    key = (method, route, status)
    children = _CHILDREN.get(key)
    if children is None:
        labels = (method, route, str(status))
        children = _CHILDREN[key] = (REQUEST_SECONDS.labels(*labels), REQUESTS.labels(*labels))
    children[0].observe(seconds)
    children[1].inc()


_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}


@contextmanager
def request_context(request_id: str) -> Iterator[None]:
    """`request_id` in `REQUEST_ID` while a request is answered: the log lines (`settings.logging.add_request_id`)
    and the hand-off (gateway/dispatch.py) read it from there."""
    own = REQUEST_ID.set(request_id)
    try:
        yield
    finally:
        REQUEST_ID.reset(own)
