"""The hand-off buffer of the gateway's dispatcher (gateway/dispatch.py): one waiting copy per delivery."""

from __future__ import annotations

import asyncio

from gateway.dispatch import Dispatcher
from gateway.metrics import GatewayMetrics
from settings import load_settings
from store import Database


def _dispatcher() -> Dispatcher:
    settings = load_settings(environ={}, dotenv=None, database_url="postgresql://nobody@127.0.0.1:1/x",
                             redis_url="redis://127.0.0.1:1/0")
    return Dispatcher(Database(settings.database.url or ""), settings, GatewayMetrics())


def _waiting(dispatcher: Dispatcher) -> list[int]:
    return sorted(item["delivery_id"] for buffer in dispatcher._buffers.values() for item in buffer)  # noqa: SLF001


def test_a_delivery_submitted_again_while_a_copy_waits_is_buffered_once() -> None:
    dispatcher = _dispatcher()
    for _ in range(3):  # the sweeper's re-submissions while the customer's shard is down
        dispatcher.submit("default", 7, "cus_a", [])
    dispatcher.submit("default", 8, "cus_b", [])
    assert _waiting(dispatcher) == [7, 8]


def test_once_taken_for_a_hand_off_a_delivery_can_be_buffered_again() -> None:
    async def run() -> tuple[list[int], list[int]]:
        dispatcher = _dispatcher()
        flushing = asyncio.get_running_loop().create_task(dispatcher._flush_loop())  # noqa: SLF001
        dispatcher.submit("default", 7, "cus_a", [])
        await dispatcher.settled()  # taken by the flush loop (no Ray here: the hand-off is dropped, as when down)
        taken = _waiting(dispatcher)
        dispatcher.submit("default", 7, "cus_a", [])  # the sweeper sends it again
        again = _waiting(dispatcher)
        flushing.cancel()
        return taken, again

    assert asyncio.run(run()) == ([], [7])
