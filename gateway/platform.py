"""The resources one gateway process holds: database pool, Redis, ingest, hand-off, tenants, metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import Gauge
from redis.exceptions import RedisError

from gateway.dispatch import Dispatcher, join_ray, ray_alive
from gateway.ingest import GroupCommitter
from gateway.metrics import GatewayMetrics
from gateway.tenants import TenantDirectory
from settings import Settings
from store import Database, StoreError

DEPENDENCY_UP = Gauge("payrisk_dependency_up", "1 when the dependency answered the last readiness check",
                      ["dependency"], multiprocess_mode="max")


def _with_connect_timeout(url: str, seconds: int) -> str:
    """`url` with libpq's connect_timeout set (unless the URL sets its own)."""
    if "connect_timeout=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}connect_timeout={seconds}"


class Platform:
    def __init__(self, settings: Settings) -> None:
        if not settings.database.url or not settings.redis.url:
            raise ValueError("the gateway needs DATABASE_URL and REDIS_URL (payrisk up provides them)")
        self.settings = settings
        # short waits: with PostgreSQL down a webhook is answered 503 within seconds, never after 30
        self.db = Database(_with_connect_timeout(settings.database.url, 3), max_size=6, timeout=3.0)
        self.redis: aioredis.Redis = aioredis.Redis.from_url(
            settings.redis.url, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        self.ingest = GroupCommitter(self.db, self.redis, window_ms=settings.gateway.group_commit_ms)
        self.tenants = TenantDirectory(self.db, settings.stripe.webhook_secrets)
        self.metrics = GatewayMetrics()
        self.dispatcher = Dispatcher(self.db, settings, self.metrics)

    async def start(self) -> None:
        if self.settings.ray.address:
            await asyncio.to_thread(join_ray, self.settings.ray.address)
        await self.db.open(wait=False)
        self.ingest.start()
        self.dispatcher.start()

    async def stop(self) -> None:
        await self.dispatcher.stop()
        await self.ingest.stop()
        await self.redis.aclose()
        await self.db.close()

    async def ready_report(self, verbose: bool = False) -> dict[str, Any]:
        """Ready means "can accept webhooks durably": PostgreSQL answers. Redis (a fast path only) or Ray (hand-off
        is repaired by the sweeper) being down leaves the gateway ready and is listed under `degraded`."""
        checks = await self.readiness()
        for name, check in checks.items():
            DEPENDENCY_UP.labels(name).set(1 if check["ready"] else 0)
        report: dict[str, Any] = {"ready": bool(checks["postgres"]["ready"]),
                                  "degraded": sorted(n for n, c in checks.items() if not c["ready"]),
                                  "dependencies": checks}
        if verbose:
            report["ingest"] = {"redis_errors": self.ingest.redis_errors,
                                "dispatch_shards": self.dispatcher.shard_count}
        return report

    async def readiness(self) -> dict[str, Any]:
        """Each dependency's readiness, checked concurrently with a short timeout."""
        checks = await asyncio.gather(self._check_postgres(), self._check_redis(), self._check_ray(),
                                      self._check_loops())
        return dict(zip(("postgres", "redis", "ray", "loops"), checks, strict=True))

    async def _check_postgres(self) -> dict[str, Any]:
        try:
            await asyncio.wait_for(self.db.ping(), 2.0)
            return {"ready": True}
        except (StoreError, TimeoutError) as exc:
            return {"ready": False, "error": str(exc) or type(exc).__name__}

    async def _check_redis(self) -> dict[str, Any]:
        try:
            await asyncio.wait_for(self.redis.ping(), 2.0)
            return {"ready": True}
        except (RedisError, OSError, TimeoutError) as exc:
            return {"ready": False, "error": str(exc) or type(exc).__name__}

    async def _check_loops(self) -> dict[str, Any]:
        """The background loops run and completed a pass recently (a stalled one is `degraded`, not unready: webhooks
        are still accepted durably, and timers or emails catch up once it runs again)."""
        if not await asyncio.to_thread(ray_alive):
            return {"ready": False, "error": "Ray is not reachable"}
        loops = await self.dispatcher.loops_health()
        bad = sorted(n for n, h in loops.items() if not h.get("running") or h.get("stalled"))
        report: dict[str, Any] = {"ready": not bad, "loops": loops}
        if bad:
            report["error"] = "not running or stalled: " + ", ".join(bad)
        return report

    async def _check_ray(self) -> dict[str, Any]:
        alive = await asyncio.to_thread(ray_alive)
        shards = self.dispatcher.shard_count if alive else 0
        return {"ready": alive and shards > 0, "shards": shards}
