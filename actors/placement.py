"""Where a customer lives: a stable hash of (tenant, customer) → virtual shard → shard actor.

crc32, never Python's salted `hash`, so every process and every restart agrees.
"""

from __future__ import annotations

import zlib

NAMESPACE = "payrisk"  #: the Ray namespace of every named actor (the one definition)


def virtual_shard(tenant_id: str, customer_id: str, virtual_shards: int = 256) -> int:
    return zlib.crc32(f"{tenant_id}\x1f{customer_id}".encode()) % virtual_shards


def shard_index(tenant_id: str, customer_id: str, shards: int, virtual_shards: int = 256) -> int:
    return virtual_shard(tenant_id, customer_id, virtual_shards) % shards


def shard_name(index: int) -> str:
    return f"customer-shard-{index:02d}"
