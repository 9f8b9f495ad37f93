"""The simulator's ASGI app: the Stripe API subset (`/v1/…`), the control surface (`/_sim/…`), and a
background webhook deliverer while the app runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulator import api, control
from simulator.core import Simulator
from simulator.webhooks import deliver_forever


async def _health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def create_app(sim: Simulator) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        worker = None
        if sim.settings.auto_deliver:
            worker = asyncio.create_task(deliver_forever(sim.outbox, sim.settings.deliver_interval))
        try:
            yield
        finally:
            if worker is not None:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker

    routes = [Route("/healthz", _health, methods=["GET"]), *control.routes(sim), *api.routes(sim)]
    return Starlette(routes=routes, lifespan=lifespan)
