"""The shard's batch fallback on Ray: a hand-off batch whose shared transaction fails (another writer advanced a
customer's stream under the shard's memory) is applied again item by item — every delivery applied exactly once,
the other writer's event kept. A real shard actor, real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import ray

from actors.placement import NAMESPACE
from actors.shard import CustomerShard
from actors.system import actor_config
from settings import load_settings
from store import Database, deliveries, events
from store.deliveries import DeliveryStatus
from store.events import NewEvent
from tests.support.deliveries import stored_failure


def test_a_failed_batch_falls_back_to_one_delivery_at_a_time(database_url: str, ray_session: None) -> None:
    settings = load_settings(environ={}, dotenv=None, database_url=database_url)
    shard = CustomerShard.options(name=f"shard-batch-{uuid.uuid4().hex[:6]}", namespace=NAMESPACE).remote(
        0, actor_config(settings, planner="default"))
    tag = uuid.uuid4().hex[:8]

    async def scenario() -> tuple[list[str], int, list[DeliveryStatus | None]]:
        db = Database(database_url, max_size=2)
        await db.open()
        try:
            a, b = await stored_failure(db, f"a{tag}"), await stored_failure(db, f"b{tag}")
            await shard.state_of.remote("default", b["customer_id"])  # the shard holds b at version 0 …
            async with db.transaction() as conn:  # … when another writer appends to b's stream
                await events.append(conn, "default", str(b["customer_id"]), 0, [NewEvent("ProfileUpdated", {
                    "profile": {"country": "FR"}, "request_id": "elsewhere",
                    "at": datetime(2026, 3, 2, tzinfo=UTC).isoformat()})])
            outcomes = await shard.apply_deliveries.remote([a, b])
            again = await shard.apply_deliveries.remote([a, b])
            assert again == ["skipped", "skipped"]
            async with db.connection() as conn:
                version = await events.stream_version(conn, "default", str(b["customer_id"]))
                statuses = [await deliveries.lock_for_apply(conn, int(str(i["delivery_id"]))) for i in (a, b)]
            return outcomes, version, statuses
        finally:
            await db.close()

    try:
        outcomes, version, statuses = asyncio.run(scenario())
        assert outcomes == ["applied", "applied"]
        assert statuses == [DeliveryStatus.APPLIED, DeliveryStatus.APPLIED]
        state = ray.get(shard.state_of.remote("default", f"cus_b{tag}"))
        assert state["version"] == version > 1 and state["state"]["profile"]["country"] == "FR"
    finally:
        ray.kill(shard, no_restart=True)
