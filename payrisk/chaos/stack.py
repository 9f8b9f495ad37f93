"""Everything one chaos run starts, owns, and stops again in reverse order.

PostgreSQL and Redis are processes of this run (so they may be SIGKILLed); payrisk reaches them, the provider
(the simulator's API) and SMTP (a local catcher) through fault proxies. Ray is local on 127.0.0.1 with its own
temp dir; the gateway is this process's uvicorn (production server options) on a free port; the clock is the
simulated one, moved by the driver, so retries come due within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import stripe

from actors.placement import NAMESPACE
from payrisk.chaos.proxy import FaultProxy
from payrisk.chaos.servers import OwnPostgres, OwnRedis
from payrisk.demo.pump import WebhookPump
from payrisk.embedded import sigkill_process, stop_process
from payrisk.errors import CliError
from settings import environment, load_settings
from simulator.core import Simulator, SimulatorSettings
from simulator.faults import Faults
from simulator.models import load_model
from simulator.server import SimulatorServer, free_port
from simulator.webhooks import Pending

_SCRUBBED_ENV = ("RAY_ADDRESS", "SLACK_WEBHOOK_URL", "ALERT_WEBHOOK_URL", "ALERT_WEBHOOK_SECRET", "SMTP_URL")
#: realistic provider behaviour during the whole run: duplicates and reordering
TRAFFIC_FAULTS = {"webhook_duplicate_rate": 0.2, "webhook_reorder_window": 8}


class ChaosPump(WebhookPump):
    """Delivers like a provider: a refused delivery (5xx, 429, connection error) is retried with backoff for up to
    `patience` seconds. Counts answers; remembers every event id the gateway acknowledged (2xx)."""

    def __init__(self, sim: Simulator, url: str, secret: str, patience: float = 90.0) -> None:
        super().__init__(sim, url, secret, concurrency=16)
        self.patience = patience
        self.answers: Counter[str] = Counter()
        self.acked: set[str] = set()
        self.acked_count = 0
        self.lost: list[str] = []  # given up on (never acknowledged): the provider would retry for days

    async def _post(self, item: Pending) -> None:
        deadline, pause = time.monotonic() + self.patience, 0.1
        while True:
            header = stripe.WebhookSignature.generate_signature_header(item.body.decode(), self.secret,
                                                                        timestamp=int(time.time()))
            try:
                response = await self._client.post(self.url, content=item.body, headers={
                    "content-type": "application/json; charset=utf-8", "stripe-signature": header})
                self.answers[str(response.status_code)] += 1
                if 200 <= response.status_code < 300:
                    self.acked.add(item.event_id)
                    self.acked_count += 1
                    return
            except httpx.HTTPError as exc:
                self.answers[type(exc).__name__] += 1
            if time.monotonic() > deadline:
                self.lost.append(item.event_id)
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)


class GatewayProcess:
    """The gateway as its own process (a Ray driver joining the run's Ray), so that it can be SIGKILLed."""

    def __init__(self, env: dict[str, str], logfile: Path) -> None:
        self.port = free_port()
        self.env, self.logfile = env, logfile
        self._proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> None:
        log = open(self.logfile, "ab")  # noqa: SIM115 - the process's lifetime
        self._proc = subprocess.Popen([sys.executable, "-m", "payrisk.chaos.gateway_main", str(self.port)],
                                      env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise CliError(f"the chaos gateway did not start; see {self.logfile}")
            time.sleep(0.2)

    def sigkill(self) -> None:
        if sigkill_process(self._proc):
            self.kills += 1

    def stop(self) -> None:
        stop_process(self._proc, 20)
        self._proc = None


class ChaosStack:
    def __init__(self, seed: int, customers: int, workdir: Path | None = None) -> None:
        self.seed, self.customers = seed, customers
        self.run_id = secrets.token_hex(4)
        self.dir = workdir or Path(tempfile.mkdtemp(prefix="payrisk-chaos-"))
        self._stops = contextlib.ExitStack()
        self.proxies: dict[str, FaultProxy] = {}
        self.system: Any = None
        self.clock: Any = None
        self.node_kills = 0

    def __enter__(self) -> ChaosStack:
        try:
            self._start()
        except BaseException:
            self._stops.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stops.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------------------------------------- start
    def _start(self) -> None:
        self._start_storage()
        self._start_ray()
        self._start_simulator()
        self._start_actors()
        self.gateway = GatewayProcess(self._gateway_env(), self.dir / "gateway.log")
        self._stops.callback(self.gateway.stop)
        self.gateway.start()
        self.pump = ChaosPump(self.sim, self.gateway.url + "/webhooks/stripe", self.sim.settings.webhook_secret)
        self._stops.callback(self.pump.close)

    def _proxy(self, name: str, port: int) -> FaultProxy:
        proxy = self.proxies[name] = FaultProxy(("127.0.0.1", port)).start()
        self._stops.callback(proxy.stop)
        return proxy

    def _start_storage(self) -> None:
        from store.db import create_database
        from store.migrate import apply_migrations

        self.pg = OwnPostgres(self.dir)
        self._stops.callback(self.pg.stop)
        self.pg.start()
        create_database(self.pg.url, "payrisk", if_missing=False)
        self.database_url = self.pg.url.rsplit("/", 1)[0] + "/payrisk"  # direct: the checks, never faulted
        apply_migrations(self.database_url)
        self.redis = OwnRedis(self.dir)
        self._stops.callback(self.redis.stop)
        self.redis.start()
        pg_proxy, redis_proxy = self._proxy("postgres", self.pg.port), self._proxy("redis", self.redis.port)
        self.settings = load_settings(
            environ={}, dotenv=None, data_dir=self.dir, shards=2, sweep_interval_seconds=1.0, sweep_grace_seconds=3.0,
            database_url=f"postgresql://postgres@{pg_proxy.address}/payrisk",
            redis_url=f"redis://{redis_proxy.address}/0", header_timeout_seconds=10.0, body_timeout_seconds=15.0)

    def _start_ray(self) -> None:
        import ray
        from ray.cluster_utils import Cluster

        from actors.raysys import make_private

        for name in _SCRUBBED_ENV:
            os.environ.pop(name, None)
        if ray.is_initialized():
            raise CliError("payrisk chaos starts its own Ray; this process already has one")
        # a head and two worker nodes on this machine (loopback, own temp dir): shards live on the workers, so a
        # worker node can be killed; node death is noticed in ~2 s. Ray's test cluster records its address in the
        # default temp dir whatever temp dir its nodes use, and does not create that directory.
        from ray._common.utils import get_default_ray_temp_dir

        os.makedirs(get_default_ray_temp_dir(), exist_ok=True)
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 2, "node_ip_address": "127.0.0.1", "include_dashboard": False,
            "temp_dir": tempfile.mkdtemp(prefix="payrisk-chaos-ray-"),
            "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3}})
        self._stops.callback(self.cluster.shutdown)
        self.worker_nodes = [self.add_worker_node() for _ in range(2)]
        ray._private.services.resolve_ip_for_localhost = lambda host: host  # the cluster listens on loopback
        ray.init(address=self.cluster.address, namespace=NAMESPACE, log_to_driver=False,
                 _node_ip_address="127.0.0.1")
        self._stops.callback(ray.shutdown)
        make_private()
        self.ray_address = self.cluster.address

    def add_worker_node(self) -> Any:
        """A Ray worker node that can host shards (custom resource `shard_slot`)."""
        return self.cluster.add_node(num_cpus=1, resources={"shard_slot": 4}, node_ip_address="127.0.0.1")

    def _gateway_env(self) -> dict[str, str]:
        """What a `payrisk up` worker gets: the effective settings as environment variables."""
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYRISK_", "STRIPE_")) and k not in (
            "DATABASE_URL", "REDIS_URL", "SMTP_URL")}
        env.update(environment(s))
        env.update({"RAY_ADDRESS": self.ray_address, "PAYRISK_DATA_DIR": str(self.dir), "PAYRISK_LOG_LEVEL": "warning"})
        return env

    def _start_simulator(self) -> None:
        settings = SimulatorSettings(seed=self.seed, customers=self.customers, id_namespace=self.run_id,
                                     api_keys=(f"sk_test_chaos_{self.run_id}",), auto_deliver=False,
                                     webhook_secret=f"whsec_chaos_{secrets.token_hex(16)}",
                                     faults=Faults(**TRAFFIC_FAULTS))
        self.server = SimulatorServer(sim=Simulator(settings, model=load_model(settings.model)))
        self.server.start()
        self._stops.callback(self.server.stop)
        self.sim = self.server.sim
        self._proxy("provider", self.server.port)

    def _start_actors(self) -> None:
        import ray

        from actors.clock import start_sim_clock
        from actors.notifier.catcher import start_catcher
        from actors.system import ActorSystem

        catcher = start_catcher(0, self.dir / "mail")
        self._stops.callback(catcher.stop)
        smtp = f"smtp://{self._proxy('smtp', catcher.port).address}"
        self.settings = self.settings.replace(
            stripe_api_key=self.sim.settings.api_keys[0],
            stripe_api_base=f"http://{self.proxies['provider'].address}",
            stripe_webhook_secrets=(self.sim.settings.webhook_secret,), smtp_url=smtp)
        self.clock = start_sim_clock(self.sim.now())
        self._stops.callback(ray.kill, self.clock)
        self.system = ActorSystem(self.settings, clock="sim", planner="strategies", shard_resources={"shard_slot": 1})
        self._stops.callback(self.system.stop)
        self.system.start(run_loops=True)

    # ------------------------------------------------------------------------------------------------- use
    def set_clock(self, at: datetime) -> None:
        import ray

        ray.get(self.clock.set.remote(at.isoformat()))

    def flush(self) -> int:
        return self.pump.flush()
