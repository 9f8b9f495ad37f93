"""Delivering the simulator's webhooks to the gateway: over HTTP with several senders at once (`WebhookPump`,
`payrisk demo --http`), or in-process (`DirectPump`, the default).

The simulator's own `flush()` posts one webhook at a time, and each waits for a PostgreSQL commit in the
gateway (4-10 ms here), so 10,000 customers' 60,000 webhooks would take five to ten minutes by themselves.
Providers deliver concurrently; so does this pump: each customer's webhooks go in the order the simulator
emitted them, different customers in parallel, so the gateway's group commit shares commits between them.
Bodies are the simulator's exact bytes, signed as it signs them (the `stripe` SDK's helper, wall-clock `t`).

The pump takes the simulator's pending deliveries under the simulator's lock (the API emits events under
it), so nothing emitted meanwhile is lost. A refused delivery is tried again, `attempts` times per flush.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import stripe

from simulator.core import Simulator
from simulator.webhooks import Pending

if TYPE_CHECKING:
    from gateway.platform import Platform


class WebhookDeliveryError(RuntimeError):
    """Some webhooks were still refused after every attempt of one flush."""


def by_customer(items: Iterable[Pending]) -> list[deque[Pending]]:
    """Group deliveries by the customer they concern, keeping emission order within each group."""
    groups: dict[str, deque[Pending]] = defaultdict(deque)
    for item in sorted(items, key=lambda p: p.seq):
        obj = orjson.loads(item.body).get("data", {}).get("object", {})
        customer = obj.get("customer") if obj.get("object") != "customer" else obj.get("id")
        groups[str(customer)].append(item)
    return list(groups.values())


def take_pending(sim: Simulator) -> list[Pending]:
    """The simulator's pending deliveries, taken under its lock (the API emits events under it: none is lost)."""
    with sim.lock:
        items = sim.outbox.pending()
        sim.outbox.clear()
    return items


class WebhookPump:
    def __init__(
        self, sim: Simulator, url: str, secret: str, concurrency: int = 24, attempts: int = 3
    ) -> None:
        self.sim, self.url, self.secret = sim, url, secret
        self.concurrency, self.attempts = concurrency, attempts
        self._loop = asyncio.new_event_loop()
        self._client = self._loop.run_until_complete(self._open())

    async def _open(self) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        return httpx.AsyncClient(timeout=30.0, limits=limits)

    def close(self) -> None:
        self._loop.run_until_complete(self._client.aclose())
        self._loop.close()

    def flush(self) -> int:
        """Deliver every pending webhook; returns how many the gateway acknowledged (2xx)."""
        items = take_pending(self.sim)
        return self._loop.run_until_complete(self._deliver(by_customer(items))) if items else 0

    async def _deliver(self, groups: list[deque[Pending]]) -> int:
        queue: deque[deque[Pending]] = deque(groups)
        results = await asyncio.gather(
            *(self._sender(queue) for _ in range(min(self.concurrency, len(groups))))
        )
        return sum(results)

    async def _sender(self, queue: deque[deque[Pending]]) -> int:
        accepted = 0
        while queue:
            group = queue.popleft()
            for item in group:
                await self._post(item)
                accepted += 1
        return accepted

    async def _post(self, item: Pending) -> None:
        for attempt in range(1, self.attempts + 1):
            header = stripe.WebhookSignature.generate_signature_header(
                item.body.decode(), self.secret, timestamp=int(time.time())
            )
            try:
                response = await self._client.post(
                    self.url,
                    content=item.body,
                    headers={"content-type": "application/json; charset=utf-8", "stripe-signature": header},
                )
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= response.status_code < 300:
                    return
                error = f"HTTP {response.status_code}: {response.text[:200]}"
            await asyncio.sleep(0.05 * attempt)
        raise WebhookDeliveryError(f"webhook {item.event_id} ({item.event_type}) refused: {error}")


class DirectPump:
    """The same deliveries handed to the gateway's own ingest in its event loop, without HTTP: each body is read
    as the webhook route reads it (`gateway.webhooks.stripe_delivery`), stored by the group commit — durable,
    deduplicated — and queued for its customer's shard by the same dispatcher. What it skips is the HTTP request
    and the signature check (the bodies come from the simulator in this process, never from a network); the
    integrity checks count what it stored as acknowledged. A step's webhooks are queued in emission order, a
    commit batch at a time, so they share group-commit transactions as concurrent senders' do under real traffic."""

    def __init__(self, sim: Simulator, platform: Platform, loop: asyncio.AbstractEventLoop,
                 tenant: str = "default") -> None:
        self.sim, self.platform, self.loop, self.tenant = sim, platform, loop, tenant
        self.batch = 200  # deliveries queued at once: within the group commit's batch (256)
        self._namespace: str | None = None

    def flush(self) -> int:
        """Store and hand off every pending webhook; returns how many were stored (new or duplicate)."""
        items = take_pending(self.sim)
        if not items:
            return 0
        done: Future[int] = asyncio.run_coroutine_threadsafe(self._deliver(items), self.loop)
        return done.result()

    def settle(self) -> None:
        """Wait until the shards answered every hand-off of the deliveries stored so far (their decisions are
        committed, or the hand-off failed and is retried: the caller still reads the deliveries' status)."""
        asyncio.run_coroutine_threadsafe(self.platform.dispatcher.settled(), self.loop).result()

    async def _deliver(self, pending: list[Pending]) -> int:
        if self._namespace is None:
            tenant = await self.platform.tenants.get(self.tenant)
            if tenant is None:
                raise WebhookDeliveryError(f"tenant {self.tenant!r} does not exist")
            self._namespace = tenant.redis_namespace
        # every delivery of the step in emission order (each customer's in order), a commit batch at a time:
        # stored together as one burst, they share one group-commit transaction instead of one round per webhook
        from gateway.webhooks import store_and_hand_off_many, stripe_delivery

        headers: dict[str, Any] = {"content-type": "application/json; charset=utf-8"}
        items = sorted(pending, key=lambda p: p.seq)
        for start in range(0, len(items), self.batch):
            deliveries = []
            for item in items[start:start + self.batch]:
                delivery = stripe_delivery(self.tenant, item.body, headers)
                delivery.redis_namespace = self._namespace or ""
                deliveries.append(delivery)
            await store_and_hand_off_many(self.platform, deliveries)
        return len(items)
