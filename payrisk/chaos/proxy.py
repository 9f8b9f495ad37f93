"""A small TCP fault proxy (asyncio, in a thread of its own): latency, drops, resets and a black hole between
payrisk and one upstream (PostgreSQL, Redis, the provider, SMTP).

Toxiproxy would do the same, but it is a separate Go binary that cannot be installed from a package registry
here; this proxy is ~150 lines and runs in the chaos command's (or a test's) own process.

Modes: `pass` (forward), `latency` (delay every chunk by `latency_ms`), `drop` (accept, then close at once),
`reset` (accept, then reset with RST), `blackhole` (accept and read, never answer nor forward), `refuse` (stop
listening: connection refused). Changing the mode cuts the connections open at that moment unless `keep`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from dataclasses import dataclass, field

MODES = ("pass", "latency", "drop", "reset", "blackhole", "refuse")


@dataclass(slots=True)
class ProxyStats:
    connections: int = 0
    refused: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    modes: list[str] = field(default_factory=list)


class FaultProxy:
    """`FaultProxy(("127.0.0.1", 5432))` or `FaultProxy("/path/to/unix.sock")`; listens on 127.0.0.1:`port`."""

    def __init__(self, upstream: tuple[str, int] | str, port: int = 0) -> None:
        self.upstream = upstream
        self.mode = "pass"
        self.latency_ms = 0.0
        self.stats = ProxyStats()
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self._close(cut=True, listen=False))
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def set_mode(self, mode: str, latency_ms: float = 0.0, keep: bool = False) -> None:
        """Switch faults on or off; the connections open now are cut (as a network fault would) unless `keep`."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode, self.latency_ms = mode, latency_ms
        self.stats.modes.append(mode)
        self._call(self._apply(keep))

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    async def _apply(self, keep: bool) -> None:
        if not keep:
            await self._close(cut=True, listen=self.mode != "refuse")
        if self.mode == "refuse":
            await self._close(cut=False, listen=False)
        elif self._server is None:
            await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self._port, reuse_address=True)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _close(self, *, cut: bool, listen: bool) -> None:
        if not listen and self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None
        if cut:
            for writer in list(self._conns):
                _reset(writer)
            self._conns.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        mode = self.mode
        if mode in ("drop", "reset", "refuse"):
            if mode == "reset":
                _reset(writer)
            else:
                writer.close()
            self.stats.refused += 1
            return
        self._conns.add(writer)
        try:
            if mode == "blackhole":
                while await reader.read(65536):
                    pass
                return
            await self._forward(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._conns.discard(writer)
            writer.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if isinstance(self.upstream, str):
            up_reader, up_writer = await asyncio.open_unix_connection(self.upstream)
        else:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._conns.add(up_writer)
        try:
            await asyncio.gather(self._pipe(reader, up_writer, up=True), self._pipe(up_reader, writer, up=False))
        finally:
            self._conns.discard(up_writer)
            up_writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, up: bool) -> None:
        try:
            while data := await reader.read(65536):
                if self.mode == "latency" and self.latency_ms:
                    await asyncio.sleep(self.latency_ms / 1000)
                if self.mode == "blackhole":
                    continue  # swallowed: the peer waits for an answer that never comes
                if up:
                    self.stats.bytes_up += len(data)
                else:
                    self.stats.bytes_down += len(data)
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(OSError):
                writer.write_eof()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a dropped route or a restarted middlebox does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        writer.transport.abort()
