"""Deterministic Stripe-looking ids: the same seed, namespace and call order give the same ids.

A platform that keeps dedupe state across runs sees a rerun with the same seed as duplicates of the last run;
give each run its own `namespace` (or seed) when that matters.
"""

from __future__ import annotations

import hashlib
import itertools
import threading

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class IdFactory:
    def __init__(self, seed: int, namespace: str = "") -> None:
        self._seed = f"{namespace}:{seed}" if namespace else str(seed)
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def new(self, prefix: str) -> str:
        """`cus_…`, `in_…`, `evt_…`: 14 base62 characters derived from the seed and a counter."""
        with self._lock:
            n = next(self._counter)
        digest = int.from_bytes(hashlib.sha256(f"{self._seed}:{prefix}:{n}".encode()).digest()[:12], "big")
        chars = []
        for _ in range(14):
            digest, rest = divmod(digest, 62)
            chars.append(_ALPHABET[rest])
        return f"{prefix}_{''.join(chars)}"
