"""The body read deadline of the edge limits (gateway/limits.py): a body that does not arrive in time is a 408,
any other cancellation stays a cancellation, and once the body is in, a wait for the disconnect has no deadline."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from starlette.types import Message, Receive, Scope, Send

from gateway.limits import EdgeLimits


def _scope() -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/api/x", "raw_path": b"/api/x", "query_string": b"",
            "headers": [(b"content-length", b"10")]}


class _Client:
    """An ASGI receive fed by the test: each message is released when the test puts it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Message] = asyncio.Queue()

    async def receive(self) -> Message:
        return await self.queue.get()


async def _reader(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that reads its whole body, then waits for the disconnect as a streaming response does."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
    assert (await receive())["type"] == "http.disconnect"


async def _answer(app: EdgeLimits, client: _Client) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(_scope(), client.receive, send)
    return sent


def test_a_body_that_stops_arriving_is_answered_408_within_the_period() -> None:
    async def run() -> tuple[list[Message], float]:
        client = _Client()
        client.queue.put_nowait({"type": "http.request", "body": b"{\"a\":", "more_body": True})
        started = time.monotonic()
        sent = await _answer(EdgeLimits(_reader, body_timeout=0.4), client)
        return sent, time.monotonic() - started

    sent, took = asyncio.run(run())
    assert sent[0]["status"] == 408
    assert orjson.loads(sent[1]["body"])["type"].endswith("/request-timeout")
    assert 0.4 <= took < 2.0  # the deadline, met within the sweep period (0.1 s here)


def test_a_cancellation_that_is_not_the_deadline_stays_a_cancellation() -> None:
    async def run() -> None:
        client = _Client()
        task = asyncio.create_task(_answer(EdgeLimits(_reader, body_timeout=30.0), client))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())


def test_once_the_body_is_in_waiting_for_the_disconnect_has_no_deadline() -> None:
    async def run() -> list[Message]:
        client = _Client()
        client.queue.put_nowait({"type": "http.request", "body": b"0123456789", "more_body": False})
        task = asyncio.create_task(_answer(EdgeLimits(_reader, body_timeout=0.2), client))
        await asyncio.sleep(0.6)  # three deadlines long: the app still waits for the disconnect, not cut off
        assert not task.done()
        client.queue.put_nowait({"type": "http.disconnect"})
        return await task

    sent = asyncio.run(run())
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"0123456789"


def test_a_body_in_chunks_within_its_deadline_is_read_whole() -> None:
    async def run() -> list[Message]:
        client = _Client()
        app = EdgeLimits(_reader, body_timeout=0.5)
        task = asyncio.create_task(_answer(app, client))
        for chunk in (b"01234", b"56789"):
            await asyncio.sleep(0.1)
            client.queue.put_nowait({"type": "http.request", "body": chunk, "more_body": chunk == b"01234"})
        client.queue.put_nowait({"type": "http.disconnect"})
        return await task

    sent = asyncio.run(run())
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"0123456789"
