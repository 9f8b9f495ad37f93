"""The Starlette application: routes and exception handlers declared as data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import admin, analytics, api, dashboard
from gateway.auth import routes as auth_routes
from gateway.auth.middleware import AccessMiddleware
from gateway.auth.runtime import AccessControl
from gateway.gauges import GaugeRefresher
from gateway.limits import EdgeLimits
from gateway.metrics import metrics_endpoint
from gateway.platform import Platform
from gateway.problems import (
    ProblemError,
    handle_disconnect,
    handle_problem,
    handle_server_error,
    handle_unavailable,
    problem_response,
)
from gateway.provider_webhooks import provider_challenge, provider_webhook
from gateway.telemetry import RequestTelemetry
from gateway.webhooks import stripe_webhook
from settings import Settings, load_settings
from settings.process import tune_gc
from store import StoreUnavailable


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def readyz(request: Request) -> Response:
    """Ready = webhooks can be accepted durably (PostgreSQL); other dependencies down are reported as degraded."""
    report = await request.app.state.platform.ready_report(verbose="verbose" in request.query_params)
    return Response(orjson.dumps(report), status_code=200 if report["ready"] else 503,
                    media_type="application/json")


async def handle_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    titles = {404: "Not Found", 405: "Method Not Allowed"}
    title = titles.get(exc.status_code, "HTTP error")
    return problem_response(exc.status_code, title.lower().replace(" ", "-"), title,
                            f"{request.method} {request.url.path}: {exc.detail}", request.url.path,
                            exc.headers)  # a 405 keeps its Allow header


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics_endpoint, methods=["GET"]),
    Route("/webhooks/stripe", stripe_webhook, methods=["POST"]),
    Route("/webhooks/stripe/{tenant}", stripe_webhook, methods=["POST"]),
    Route("/webhooks/{provider}", provider_webhook, methods=["POST"]),  # the registry's providers; else 404
    Route("/webhooks/{provider}/{tenant}", provider_webhook, methods=["POST"]),
    Route("/webhooks/{provider}", provider_challenge, methods=["GET"]),  # Braintree's bt_challenge
    Route("/webhooks/{provider}/{tenant}", provider_challenge, methods=["GET"]),
    *api.ROUTES,
    *analytics.ROUTES,
    *admin.ROUTES,
    *auth_routes.ROUTES,
    *dashboard.ROUTES,
]


def create_app(settings: Settings) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        platform = Platform(settings)
        app.state.platform = platform
        await platform.start()
        access = app.state.access = AccessControl(settings, platform.db, platform.redis)
        platform.tenants.set_keyring(access.keyring)
        access.start()
        gauges = app.state.gauges = GaugeRefresher(platform.db, settings.logging.metrics_interval_seconds)
        gauges.start()
        tune_gc(settings.gateway.gc_threshold)  # start-up done: frozen, collected rarely (settings/process.py)
        try:
            yield
        finally:
            await gauges.stop()
            await access.stop()
            await platform.stop()

    return Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        middleware=[Middleware(RequestTelemetry),  # type: ignore[arg-type]
                    Middleware(EdgeLimits, max_body=settings.gateway.max_body_bytes,  # type: ignore[arg-type]
                               body_timeout=settings.gateway.body_timeout_seconds),
                    Middleware(AccessMiddleware)],  # type: ignore[arg-type]
        exception_handlers={
            ProblemError: handle_problem,
            StoreUnavailable: handle_unavailable,
            ClientDisconnect: handle_disconnect,
            HTTPException: handle_http,
            Exception: handle_server_error,
        },
    )


def create_app_from_env() -> Starlette:
    """Factory for uvicorn workers (`uvicorn --factory gateway.app:create_app_from_env`)."""
    from settings.logging import configure_logging

    settings = load_settings()
    configure_logging(settings.logging.level, settings.logging.format)  # a worker process logs like `payrisk up`
    return create_app(settings)
