"""Everything one demo run starts, in order, and stops again in reverse.

The run gets its own PostgreSQL database (created on the embedded server, or on DATABASE_URL's server) so
that its deliveries, timers and attempts never mix with another run's or a live installation's: the
scheduler claims every due timer of its database, whatever the tenant. Redis keys are namespaced by that
database's tenant. Nothing here talks to the outside: Ray is local on 127.0.0.1, mail goes to a local
catcher, alert webhooks are off.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import uvicorn

from payrisk.demo.pump import DirectPump, WebhookPump
from payrisk.errors import CliError
from settings import Settings
from simulator.core import Simulator, SimulatorSettings
from simulator.outcomes import OutcomeModel
from simulator.server import SimulatorServer, free_port

#: Outside endpoints a demo must never reach, removed from the environment the Ray workers inherit.
_SCRUBBED_ENV = ("RAY_ADDRESS", "SLACK_WEBHOOK_URL", "ALERT_WEBHOOK_URL", "ALERT_WEBHOOK_SECRET", "SMTP_URL")


class GatewayThread:
    """The gateway app under uvicorn on 127.0.0.1 in a background thread of this process."""

    def __init__(self, app: Any, port: int) -> None:
        self.port = port
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", access_log=False
        )
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None  # the gateway's event loop, once it serves
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"demo-gateway-{port}", daemon=True)

    def _run(self) -> None:
        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            await self._server.serve()

        asyncio.run(serve())

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise CliError(f"the demo gateway did not start on 127.0.0.1:{self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


class DemoStack:
    """Storage, a fresh database, Ray, the simulated clock, the actors, the simulator and the gateway."""

    def __init__(
        self,
        settings: Settings,
        sim_settings: SimulatorSettings,
        model: OutcomeModel,
        run_id: str,
        keep: bool = False,
        http: bool = False,
    ) -> None:
        self.settings, self.sim_settings, self.model = settings, sim_settings, model
        self.http = http  # webhooks over HTTP, signed (WebhookPump); else handed to the gateway in-process
        self.pump: WebhookPump | DirectPump | None = None
        self.database = f"payrisk_demo_{run_id}"
        self.keep = keep  # keep the database and the caught mail after the run
        self.maildir: Path | None = None  # where the caught mail is written (kept runs only)
        self.catcher: Any = None  # the SMTP catcher (its `messages` are the dunning emails customers read)
        self.server: SimulatorServer | None = None
        self.system: Any = None
        self.clock: Any = None
        self._stops = contextlib.ExitStack()

    # ------------------------------------------------------------------------------------------------- start
    def __enter__(self) -> DemoStack:
        try:
            self._start()
        except BaseException:
            self._stops.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stops.close()

    def _start(self) -> None:
        # storage (embedded PostgreSQL, the run's database, its migrations) and Ray start side by side: each is
        # mostly waiting for its own processes; the database's stops still run after Ray's, as if started first
        database_stops = self._stops.enter_context(contextlib.ExitStack())
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-storage") as pool:
            database = pool.submit(self._start_database, database_stops)
            try:
                self._start_ray()
            finally:
                database.result()
        gateway_port = free_port()
        self._start_simulator(f"http://127.0.0.1:{gateway_port}/webhooks/stripe")
        self._start_actors()
        self._start_gateway(gateway_port)

    def _start_database(self, stops: contextlib.ExitStack) -> None:
        from payrisk.serve import Stack
        from store.migrate import apply_migrations

        storage = Stack(self.settings)
        stops.callback(storage.stop)
        settings = storage.start_storage()
        assert settings.database.url is not None
        server_url = settings.database.url
        _create_database(server_url, self.database)
        if not self.keep:
            stops.callback(_drop_database, server_url, self.database)
        url = with_database(server_url, self.database)
        apply_migrations(url)
        self.settings = settings.replace(database_url=url)

    def _start_ray(self) -> None:
        import ray

        from actors.raysys import start_ray

        for name in _SCRUBBED_ENV:
            os.environ.pop(name, None)
        started = not ray.is_initialized()
        start_ray(None, include_dashboard=False, worker_niceness=self.settings.ray.worker_niceness)
        if started:
            self._stops.callback(ray.shutdown)

    @property
    def sim(self) -> Simulator:
        assert self.server is not None, "start the stack first"
        return self.server.sim

    def _start_simulator(self, webhook_url: str) -> None:
        settings = self.sim_settings.model_copy(update={"webhook_url": webhook_url, "auto_deliver": False})
        self.server = SimulatorServer(sim=Simulator(settings, model=self.model))
        self.server.start()
        self._stops.callback(self.server.stop)
        if self.http:
            self.pump = WebhookPump(self.server.sim, webhook_url, settings.webhook_secret)
            self._stops.callback(self.pump.close)

    def _start_actors(self) -> None:
        import ray

        from actors.clock import start_sim_clock
        from actors.notifier.catcher import start_catcher
        from actors.system import ActorSystem

        assert self.server is not None
        if self.keep:  # a throwaway run keeps its mail in memory only (no file per email)
            self.maildir = self.settings.data_dir / "demo" / self.database / "mail"
        catcher = self.catcher = start_catcher(0, self.maildir)
        self._stops.callback(catcher.stop)
        self.settings = self.settings.replace(
                stripe_api_key=self.sim_settings.api_keys[0],
                stripe_api_base=self.server.url,
                stripe_webhook_secrets=(self.sim_settings.webhook_secret,),
                smtp_url=catcher.smtp_url,
            )
        self.clock = start_sim_clock(self.sim.now())
        self._stops.callback(ray.kill, self.clock)
        self.system = ActorSystem(
            self.settings,
            clock="sim",
            planner="strategies",
        )
        self._stops.callback(self.system.stop)
        self.system.start(run_loops=False, wait=False)  # their processes start while the gateway does

    def _start_gateway(self, port: int) -> None:
        from gateway.app import create_app

        gateway = GatewayThread(create_app(self.settings), port)
        self._stops.callback(gateway.stop)
        gateway.start()
        self.system.ready()
        if not self.http:
            assert gateway.loop is not None
            self.pump = DirectPump(self.sim, gateway.app.state.platform, gateway.loop)

    # ------------------------------------------------------------------------------------------------- use
    def move_clock(self, at: datetime) -> Any:
        """Start moving the platform's clock to `at`: the clock actor's answer (`ray.get` it before the platform
        acts at `at`)."""
        return self.clock.set.remote(at.isoformat())

    def flush(self) -> int:
        """Deliver the simulator's pending webhooks to the gateway; returns how many were acknowledged."""
        assert self.pump is not None, "start the stack first"
        return self.pump.flush()

    def settle(self) -> None:
        """In-process delivery: wait until the shards answered the hand-offs so far (over HTTP the gateway's
        hand-offs are not visible here: the caller reads the deliveries' status either way)."""
        if isinstance(self.pump, DirectPump):
            self.pump.settle()


def _create_database(server_url: str, name: str) -> None:
    from store import StoreError
    from store.db import create_database

    try:
        create_database(server_url, name, if_missing=False)
    except StoreError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CliError(f"the demo needs its own database and could not create {name!r}: {first}") from None


def _drop_database(server_url: str, name: str) -> None:
    from store.db import drop_database

    drop_database(server_url, name)
