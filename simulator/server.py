"""Run the simulator in-process: uvicorn on a free 127.0.0.1 port in a background thread.

with SimulatorServer(SimulatorSettings(seed=7, customers=10)) as server:
    client = stripe.StripeClient(server.api_key, base_addresses={"api": server.url})
    server.sim.advance(...)
    server.flush()
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvicorn

from simulator.app import create_app
from simulator.core import Simulator, SimulatorSettings

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class SimulatorServer:
    def __init__(
        self,
        settings: SimulatorSettings | None = None,
        *,
        sim: Simulator | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_level: str = "warning",
    ) -> None:
        self.sim = sim or Simulator(settings)
        self.host, self.port = host, port or free_port(host)
        config = uvicorn.Config(
            create_app(self.sim), host=self.host, port=self.port, log_level=log_level, lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._main, name=f"stripe-sim-{self.port}", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_key(self) -> str:
        return self.sim.settings.api_keys[0]

    def start(self, timeout: float = 30.0) -> SimulatorServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the simulator did not start on {self.url}")
            time.sleep(0.02)
        return self

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()  # webhook delivery runs here; `run()` submits to it
        await self._server.serve()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run a coroutine on the server's event loop (webhook delivery lives there) and wait for it."""
        assert self._loop is not None, "start() the server first"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def flush(self, everything: bool = False) -> int:
        return self.run(self.sim.flush(everything))

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
