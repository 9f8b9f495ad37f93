"""Redis idempotency claims: a fast path only, always in front of a PostgreSQL constraint.

Losing Redis (FLUSHALL, restart) can only let a duplicate reach PostgreSQL, where the unique constraint
decides; a Redis error is treated as "not claimed" so that Redis being down never rejects work.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError


class IdempotencyClaims:
    def __init__(self, client: aioredis.Redis, *, prefix: str = "payrisk:idem:", ttl_ms: int = 86_400_000) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl_ms = ttl_ms
        self.errors = 0

    async def claim(self, key: str) -> bool:
        """SET NX PX: True when this caller is first (or Redis is unavailable)."""
        try:
            return bool(await self._redis.set(self._prefix + key, b"1", nx=True, px=self._ttl_ms))
        except RedisError:
            self.errors += 1
            return True

    async def claim_many(self, keys: Sequence[str]) -> list[bool]:
        """Claim a batch in one pipelined round trip (the ingest path's per-flush call)."""
        if not keys:
            return []
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.set(self._prefix + key, b"1", nx=True, px=self._ttl_ms)
                results = await pipe.execute()
            return [bool(r) for r in results]
        except RedisError:
            self.errors += 1
            return [True] * len(keys)

    async def release(self, key: str) -> None:
        """Forget a claim whose work did not commit, so a provider retry is not absorbed."""
        try:
            await self._redis.delete(self._prefix + key)
        except RedisError:
            self.errors += 1
