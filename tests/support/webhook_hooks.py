"""Webhook receivers for simulator tests: one URL per simulated endpoint, deliveries kept raw, signatures
verified by the official SDK when read."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.servers import ServerThread

Obj = dict[str, Any]


@dataclass
class Hooks:
    """Receivers at `/hooks/{name}`; `secret` is the endpoints' signing secret."""

    secret: str
    base: str = ""
    got: dict[str, list[tuple[bytes, str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.got.setdefault(request.path_params["name"], []).append(
                (body, request.headers.get("stripe-signature", ""))
            )
        return Response(status_code=200)

    def url(self, name: str) -> str:
        return f"{self.base}/hooks/{name}"

    def events(self, name: str, secret: str | None = None) -> list[Obj]:
        """Every delivery to `name`, its signature verified by the SDK (raises on a bad one), as raw JSON."""
        with self.lock:
            deliveries = list(self.got.get(name, []))
        for body, signature in deliveries:
            stripe.Webhook.construct_event(body.decode(), signature, secret or self.secret)
        return [orjson.loads(body) for body, _ in deliveries]

    def types(self, name: str) -> list[str]:
        return [e["type"] for e in self.events(name)]

    def of(self, name: str, event_type: str) -> list[Obj]:
        return [e for e in self.events(name) if e["type"] == event_type]

    def one(self, name: str, event_type: str, *, version: str | None = None) -> Obj:
        """The one `event_type` delivery to `name` (in API version `version` when given): its `data.object`."""
        found = self.of(name, event_type)
        assert len(found) == 1, f"{name}: {len(found)} {event_type} events"
        if version is not None:
            assert found[0]["api_version"] == version
        obj: Obj = found[0]["data"]["object"]
        return obj


@contextmanager
def serve_hooks(secret: str) -> Iterator[Hooks]:
    hooks = Hooks(secret)
    app = Starlette(routes=[Route("/hooks/{name}", hooks.receive, methods=["POST"])])
    with ServerThread(app) as server:
        hooks.base = server.url
        yield hooks
