"""Stripe's Idempotency-Key semantics for POST requests.

The first request with a key (per API key) stores its status and body once execution began — errors and 500s
included — and replays return exactly that. The same key with a different method, path or parameters is an
`idempotency_error`. Keys are forgotten after `ttl` (Stripe prunes keys at least 24 h old).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

Fingerprint = tuple[str, str, tuple[tuple[str, str], ...]]  # method, path, sorted form pairs


@dataclass(frozen=True, slots=True)
class StoredResponse:
    fingerprint: Fingerprint
    status: int
    body: bytes
    stored_at: datetime
    request_id: str


class IdempotencyStore:
    def __init__(self, ttl: timedelta = timedelta(hours=24)) -> None:
        self._ttl = ttl
        self._responses: dict[tuple[str, str], StoredResponse] = {}
        self._lock = threading.Lock()

    def lookup(self, api_key: str, key: str, now: datetime) -> StoredResponse | None:
        """The stored first response for this key, unless pruned."""
        with self._lock:
            stored = self._responses.get((api_key, key))
            if stored is not None and now - stored.stored_at >= self._ttl:
                del self._responses[(api_key, key)]
                return None
            return stored

    def store(self, api_key: str, key: str, response: StoredResponse) -> None:
        with self._lock:
            self._responses.setdefault((api_key, key), response)

    def clear(self) -> None:
        with self._lock:
            self._responses.clear()
