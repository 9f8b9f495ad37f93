"""`payrisk up` and `payrisk migrate`: bring the stack up in order, take it down in reverse."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
from pathlib import Path
from typing import Any

import structlog

from payrisk.embedded import EmbeddedError, EmbeddedPostgres, EmbeddedRedis
from payrisk.errors import CliError
from settings import Settings, load_settings
from settings.logging import configure_logging

log = structlog.get_logger("payrisk")


class Stack:
    """Everything `payrisk up` starts, so that it can stop exactly that."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pg: EmbeddedPostgres | None = None
        self._redis: EmbeddedRedis | None = None
        self._ray_started = False
        self._system: Any = None
        self._catcher: Any = None

    def start_storage(self) -> Settings:
        """Start embedded servers for missing URLs; return settings with the effective URLs."""
        data_dir = self.settings.data_dir
        database_url, redis_url = self.settings.database.url, self.settings.redis.url
        try:
            if database_url is None:
                self._pg = EmbeddedPostgres(data_dir)
                database_url = self._pg.start()
            if redis_url is None:
                self._redis = EmbeddedRedis(data_dir)
                redis_url = self._redis.start()
        except EmbeddedError as exc:
            raise CliError(str(exc)) from None
        check_database(database_url)
        check_redis(redis_url)
        self.settings = self.settings.replace(database_url=database_url, redis_url=redis_url)
        return self.settings

    def start_ray_and_actors(self, include_dashboard: bool) -> dict[str, Any]:
        from actors.raysys import start_ray
        from actors.system import ActorSystem

        for variable, value in (("RAY_GRAFANA_HOST", self.settings.ray.grafana_host),
                                ("RAY_PROMETHEUS_HOST", self.settings.ray.prometheus_host)):
            if value:  # the Ray dashboard's Metrics tab embeds our Grafana and queries our Prometheus
                os.environ[variable] = value
        info = start_ray(self.settings.ray.address, dashboard_port=self.settings.ray.dashboard_port,
                         include_dashboard=include_dashboard, job_name="payrisk-up",
                         worker_niceness=self.settings.ray.worker_niceness)
        self._ray_started = self.settings.ray.address is None
        if not self.settings.smtp.url:
            self.settings = self.settings.replace(smtp_url=self._start_mail_catcher())
        self._system = ActorSystem(self.settings)
        self._system.start()
        return info

    def _start_mail_catcher(self) -> str:
        """No SMTP_URL: catch mail locally (aiosmtpd) into the data directory so it can be read."""
        from actors.notifier.catcher import start_catcher

        self._catcher = start_catcher(0, self.settings.data_dir / "mail")
        print(f"mail catcher      {self._catcher.smtp_url} → {self._catcher.maildir}", flush=True)
        return str(self._catcher.smtp_url)

    def stop(self) -> None:
        if self._system is not None:
            with contextlib.suppress(Exception):
                self._system.stop()
        if self._catcher is not None:
            with contextlib.suppress(Exception):
                self._catcher.stop()
        if self._ray_started:
            import ray

            ray.shutdown()
        if self._redis is not None:
            self._redis.stop()
        if self._pg is not None:
            self._pg.stop()


def check_database(url: str) -> None:
    from store import StoreError
    from store.db import probe

    try:
        probe(url)
    except StoreError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CliError(f"DATABASE_URL: cannot connect to PostgreSQL: {first}") from None


def check_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except (redis.RedisError, ValueError) as exc:
        raise CliError(f"REDIS_URL: cannot connect to Redis: {exc}") from None


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise CliError(f"PAYRISK_PORT: cannot listen on {host}:{port}: {exc.strerror}") from None


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: getattr(args, k, None) for k in ("host", "port", "workers", "grafana_host", "prometheus_host")}
    overrides["logging_format"] = getattr(args, "log_format", None)
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    return load_settings(**overrides)


def cmd_migrate(args: argparse.Namespace) -> int:
    from store.migrate import apply_migrations

    stack = Stack(_settings(args))
    try:
        settings = stack.start_storage()
        assert settings.database.url is not None
        applied = apply_migrations(settings.database.url)
        if getattr(args, "json", False):
            import json

            print(json.dumps({"applied": list(applied)}))
        else:
            print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none, already up to date'}")
        return 0
    finally:
        stack.stop()


def cmd_up(args: argparse.Namespace) -> int:
    import uvicorn

    from payrisk.httpserver import uvicorn_options
    from store.migrate import apply_migrations

    settings = _settings(args)
    configure_logging(settings.logging.level, settings.logging.format)
    check_port_free(settings.gateway.host, settings.gateway.port)
    stack = Stack(settings)
    try:
        settings = stack.start_storage()
        assert settings.database.url is not None
        applied = apply_migrations(settings.database.url)
        log.info("migrations.applied", count=len(applied))
        info = stack.start_ray_and_actors(include_dashboard=not args.no_dashboard)
        _export_env(settings, info)
        _banner(settings, info)
        # uvicorn re-raises the signal it caught once it has shut down: make SIGTERM an exception so that
        # the `finally` below stops everything this command started.
        signal.signal(signal.SIGTERM, _terminate)
        options = uvicorn_options(settings)  # header/body timeouts, a connection cap, no access log
        if settings.gateway.workers > 1:
            _multiprocess_metrics(settings)
            uvicorn.run("gateway.app:create_app_from_env", factory=True, host=settings.gateway.host,
                        port=settings.gateway.port, workers=settings.gateway.workers, **options)
        else:
            from gateway.app import create_app

            uvicorn.run(create_app(settings), host=settings.gateway.host, port=settings.gateway.port, **options)
        return 0
    finally:
        stack.stop()


def _multiprocess_metrics(settings: Settings) -> None:
    """Several workers: each writes its Prometheus samples to a shared directory, merged on /metrics."""
    import shutil

    directory = settings.data_dir / "prometheus"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _export_env(settings: Settings, info: dict[str, Any]) -> None:
    """Worker processes rebuild settings from the environment: hand them the effective values."""
    os.environ["DATABASE_URL"] = settings.database.url or ""
    os.environ["REDIS_URL"] = settings.redis.url or ""
    if info.get("address"):
        os.environ["RAY_ADDRESS"] = str(info["address"])


def _banner(settings: Settings, info: dict[str, Any]) -> None:
    from actors.raysys import banner_lines

    base = f"http://{settings.gateway.host}:{settings.gateway.port}"
    lines = [
        f"payrisk gateway   {base}  (readiness: /readyz, metrics: /metrics, API docs: /docs, dashboard: /dashboard)",
        f"webhooks          POST {base}/webhooks/stripe",
        *banner_lines(info, settings.ray.grafana_host, settings.ray.prometheus_host),
        f"data directory    {settings.data_dir}",
        f"logs              {settings.logging.format} on stderr (--log-format json|console); Ray workers' logs in the "
        "Ray session's logs/ directory and the dashboard's Logs view",
    ]
    print("\n".join(lines), flush=True)
