"""Webhook delivery like Stripe's: signed `Stripe-Signature` POSTs, at least once, with switchable faults.

The outbox keeps the account's webhook endpoints (`simulator.endpoints`); each queued delivery belongs to one
endpoint and carries the event as rendered for that endpoint. Each delivery is serialized once; its exact bytes
are signed with the endpoint's secret (`t=<wall clock>,v1=HMAC-SHA256(secret, f"{t}.{body}")`
via the `stripe` SDK's own helper) and sent. A non-2xx answer, a connection error or a switched-on outage
reschedules the delivery with Stripe-like backoff for up to three days. Due times use the simulator clock, so
delays and backoff elapse when the caller advances it; `flush()` delivers whatever is due.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import stripe

from simulator.clock import Clock, unix
from simulator.endpoints import DEFAULT_ENDPOINT, WebhookEndpoint
from simulator.faults import Faults

#: Seconds between a failed delivery and the next try; then give up (Stripe retries for up to 3 days live).
BACKOFF_SECONDS = (60, 300, 1800, 3600, 7200, 14400, 28800, 57600, 86400, 86400)


@dataclass(slots=True)
class Pending:
    seq: int
    event_id: str
    event_type: str
    body: bytes
    due_at: datetime
    attempts: int = 0
    endpoint: str = DEFAULT_ENDPOINT


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    event_id: str
    event_type: str
    attempt: int
    status: int | None  # HTTP status; None when unreachable or in a simulated outage
    at: datetime
    error: str | None = None
    endpoint: str = DEFAULT_ENDPOINT

    def as_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "endpoint": self.endpoint,
            "event_type": self.event_type,
            "attempt": self.attempt,
            "status": self.status,
            "at": self.at.isoformat(),
            "error": self.error,
        }


class WebhookOutbox:
    def __init__(
        self,
        endpoints: list[WebhookEndpoint],
        clock: Clock,
        wall: Clock,
        rng: random.Random,
        faults: Callable[[], Faults],
        timeout: float = 10.0,
    ) -> None:
        self._endpoints = {ep.id: ep for ep in endpoints}
        self._timeout = timeout
        self._clock, self._wall, self._rng, self._faults = clock, wall, rng, faults
        self._pending: list[Pending] = []
        self._seq = 0
        self._lock = threading.Lock()
        self.deliveries: deque[DeliveryRecord] = deque(maxlen=100_000)  # the latest delivery attempts
        self.abandoned: list[Pending] = []

    # -- endpoints -----------------------------------------------------------------------------------------------
    @property
    def url(self) -> str | None:
        """The default endpoint's URL (the `--webhook-url`)."""
        default = self._endpoints.get(DEFAULT_ENDPOINT)
        return default.url if default else None

    def endpoints(self) -> list[WebhookEndpoint]:
        with self._lock:
            return list(self._endpoints.values())

    def endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        with self._lock:
            return self._endpoints.get(endpoint_id)

    def set_endpoint(self, endpoint: WebhookEndpoint) -> None:
        """Add or replace an endpoint; what is already queued keeps the form it was rendered in."""
        with self._lock:
            self._endpoints[endpoint.id] = endpoint

    def remove_endpoint(self, endpoint_id: str) -> bool:
        """Forget an endpoint and everything still queued for it."""
        with self._lock:
            self._pending = [p for p in self._pending if p.endpoint != endpoint_id]
            return self._endpoints.pop(endpoint_id, None) is not None

    def reset_endpoints(self, endpoints: list[WebhookEndpoint]) -> None:
        with self._lock:
            self._endpoints = {ep.id: ep for ep in endpoints}

    # -- deliveries ----------------------------------------------------------------------------------------------
    def enqueue(self, event: dict[str, Any], endpoint: str = DEFAULT_ENDPOINT) -> None:
        """Queue one event for `endpoint` (twice when the duplicate fault strikes), due after the configured
        delay."""
        body = orjson.dumps(event)
        faults = self._faults()
        with self._lock:
            copies = 2 if self._rng.random() < faults.webhook_duplicate_rate else 1
            for _ in range(copies):
                self._seq += 1
                delay = self._rng.uniform(
                    faults.webhook_delay_min_seconds,
                    max(faults.webhook_delay_min_seconds, faults.webhook_delay_max_seconds),
                )
                due = self._clock.now() + timedelta(seconds=delay)
                self._pending.append(Pending(self._seq, event["id"], event["type"], body, due, endpoint=endpoint))

    def pending(self) -> list[Pending]:
        with self._lock:
            return list(self._pending)

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
            self.deliveries.clear()
            self.abandoned.clear()

    async def flush(self, everything: bool = False) -> int:
        """Deliver what is due (all pending with `everything`), each at most once per call; returns successes.
        Deliveries to an endpoint without a URL are not sent: they stay pending (the events are readable at
        `GET /v1/events`)."""
        batch = self._take(everything)
        if not batch:
            return 0
        async with httpx.AsyncClient(timeout=self._timeout) as client:
            results = [await self._deliver(client, item) for item in batch]
        return sum(results)

    def _take(self, everything: bool) -> list[Pending]:
        now = self._clock.now()
        with self._lock:
            routable = {ep.id for ep in self._endpoints.values() if ep.url}
            due = sorted(
                (p for p in self._pending if p.endpoint in routable and (everything or p.due_at <= now)),
                key=lambda p: p.seq,
            )
            taken = {p.seq for p in due}
            self._pending = [p for p in self._pending if p.seq not in taken]
            window = self._faults().webhook_reorder_window
        return self._reorder(due, window)

    def _reorder(self, items: list[Pending], window: int) -> list[Pending]:
        if window < 2:
            return items
        chunks = [items[i : i + window] for i in range(0, len(items), window)]
        for chunk in chunks:
            self._rng.shuffle(chunk)
        return [item for chunk in chunks for item in chunk]

    async def _deliver(self, client: httpx.AsyncClient, item: Pending) -> bool:
        item.attempts += 1
        status, error = await self._post(client, item)
        self.deliveries.append(
            DeliveryRecord(
                item.event_id, item.event_type, item.attempts, status, self._clock.now(), error, item.endpoint
            )
        )
        if status is not None and 200 <= status < 300:
            return True
        self._reschedule(item)
        return False

    async def _post(self, client: httpx.AsyncClient, item: Pending) -> tuple[int | None, str | None]:
        if self._faults().webhook_outage:
            return None, "simulated outage"
        endpoint = self.endpoint(item.endpoint)
        if endpoint is None or not endpoint.url:
            return None, "no webhook url configured"
        payload = item.body.decode("utf-8")
        signature = stripe.WebhookSignature.generate_signature_header(
            payload, endpoint.secret, timestamp=unix(self._wall.now())
        )
        headers = {
            "content-type": "application/json; charset=utf-8",
            "stripe-signature": signature,
            "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks; payrisk simulator)",
        }
        try:
            response = await client.post(endpoint.url, content=item.body, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:200]
        return response.status_code, None

    def _reschedule(self, item: Pending) -> None:
        if self.endpoint(item.endpoint) is None:
            return  # the endpoint was deleted meanwhile
        if item.attempts > len(BACKOFF_SECONDS):
            self.abandoned.append(item)
            return
        item.due_at = self._clock.now() + timedelta(seconds=BACKOFF_SECONDS[item.attempts - 1])
        with self._lock:
            self._pending.append(item)


async def deliver_forever(outbox: WebhookOutbox, interval: float) -> None:
    """The background worker of a running server: flush what is due every `interval` seconds."""
    while True:
        await outbox.flush()
        await asyncio.sleep(interval)
