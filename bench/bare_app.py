"""The bare-Starlette ceiling: one POST route that parses a ~2 KB JSON body with orjson and answers.

Served by uvicorn exactly as `payrisk up` serves the gateway (uvloop + httptools, access log off):
`uvicorn bench.bare_app:app --loop uvloop --http httptools --workers N --no-access-log`.
"""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def receive_webhook(request: Request) -> Response:
    event = orjson.loads(await request.body())
    return Response(orjson.dumps({"received": True, "id": event.get("id")}), media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(
    routes=[
        Route("/webhooks/stripe", receive_webhook, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)
