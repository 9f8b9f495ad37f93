"""Prometheus metrics of the gateway process (multiprocess-safe when PROMETHEUS_MULTIPROC_DIR is set)."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest, multiprocess
from starlette.requests import Request
from starlette.responses import Response

DELIVERIES = Counter("payrisk_deliveries_total", "Webhook deliveries by provider and outcome",
                     ["provider", "outcome"])
UNVERIFIED = Counter("payrisk_unverified_deliveries_total", "Webhook bodies rejected before storage",
                     ["tenant", "provider", "reason"])
DISPATCH_ERRORS = Counter("payrisk_dispatch_errors_total", "Hand-offs to shard actors that failed")


class GatewayMetrics:
    def __init__(self) -> None:
        self._deliveries: dict[tuple[str, str], Any] = {}  # labelled children: `labels()` locks on every call

    def delivery(self, provider: str, outcome: str) -> None:
        child = self._deliveries.get((provider, outcome))
        if child is None:
            child = self._deliveries[(provider, outcome)] = DELIVERIES.labels(provider, outcome)
        child.inc()

    def unverified(self, tenant: str, provider: str, reason: str) -> None:
        UNVERIFIED.labels(tenant, provider, reason.split(":")[0][:60]).inc()

    def dispatch_error(self) -> None:
        DISPATCH_ERRORS.inc()


async def metrics_endpoint(request: Request) -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        data = generate_latest(registry)
    else:
        data = generate_latest()
    return Response(data, media_type=CONTENT_TYPE_LATEST)
