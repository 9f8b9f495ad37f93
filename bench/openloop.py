"""An open-loop, fixed-rate HTTP/1.1 load generator (wrk has no rate control; wrk2 is not packaged here).

Request i is due at `start + i / rate` whatever happened to earlier requests; its latency is measured from
that due time, so a stalled server shows up in the percentiles instead of silently lowering the offered
rate (no coordinated omission). Times come from `time.perf_counter`. Connections are keep-alive and
opened on demand up to `max_connections`.
The outcome of every request is kept, so the driver can check exactly which deliveries were acknowledged.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from time import perf_counter
from typing import cast

import uvloop


@dataclass(slots=True)
class Outcome:
    status: int  # 0: no answer (connection error)
    latency_s: float
    body: bytes = b""


@dataclass(slots=True)
class OpenLoopResult:
    rate: float
    seconds: float
    outcomes: list[Outcome] = field(default_factory=list)
    connections: int = 0


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request in flight, responses framed by Content-Length."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.buffer = bytearray()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transport is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"content-length:")
        length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
        if len(self.buffer) < end + 4 + length:
            return
        status, body = int(head[9:12]), bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        if self.closed:
            raise ConnectionError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


class _Pool:
    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.idle: list[_Connection] = []
        self.opened = 0
        self.waiting: list[asyncio.Future[_Connection]] = []

    async def acquire(self) -> _Connection:
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                return conn
            self.opened -= 1  # the server closed it while idle (keep-alive timeout)
        if self.opened < self.limit:
            self.opened += 1
            _, conn = await asyncio.get_running_loop().create_connection(_Connection, self.host, self.port)
            return conn
        waiter: asyncio.Future[_Connection] = asyncio.get_running_loop().create_future()
        self.waiting.append(waiter)
        return await waiter

    def release(self, conn: _Connection) -> None:
        if conn.closed:
            self.opened -= 1
            return
        if self.waiting:
            self.waiting.pop(0).set_result(conn)
        else:
            self.idle.append(conn)


def http_request(host: str, path: str, signature: bytes, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nStripe-Signature: "
    ).encode()
    return head + signature + b"\r\n\r\n" + body


async def _one(pool: _Pool, request: bytes, due: float, slot: int, outcomes: list[Outcome]) -> None:
    conn: _Connection | None = None
    try:
        conn = await pool.acquire()
        status, body = await conn.exchange(request)
        outcomes[slot] = Outcome(status, perf_counter() - due, body)
    except (ConnectionError, OSError):
        outcomes[slot] = Outcome(0, perf_counter() - due)
    finally:
        if conn is not None:
            pool.release(conn)


async def _drive(
    host: str, port: int, requests: list[bytes], rate: float, max_connections: int
) -> OpenLoopResult:
    loop = asyncio.get_running_loop()
    pool = _Pool(host, port, max_connections)
    outcomes = [Outcome(0, 0.0)] * len(requests)
    tasks: set[asyncio.Task[None]] = set()
    start = perf_counter() + 0.1  # uvloop's loop.time() has millisecond resolution: too coarse here
    for i, request in enumerate(requests):
        due = start + i / rate
        if due > perf_counter():
            await asyncio.sleep(due - perf_counter())
        task = loop.create_task(_one(pool, request, due, i, outcomes))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    for conn in pool.idle:
        assert conn.transport is not None
        conn.transport.close()
    return OpenLoopResult(rate, len(requests) / rate, outcomes, pool.opened)


def run(
    host: str,
    port: int,
    lines: list[bytes],
    rate: float,
    *,
    path: str = "/webhooks/stripe",
    max_connections: int = 256,
) -> OpenLoopResult:
    """Send each `<signature>\\t<body>` line once, at `rate` requests a second."""
    requests = []
    for line in lines:
        signature, body = line.split(b"\t", 1)
        requests.append(http_request(host, path, signature, body))
    return uvloop.run(_drive(host, port, requests, rate, max_connections))
