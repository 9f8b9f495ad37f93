"""Shared fixtures: a fresh migrated PostgreSQL database per session, Redis, and one local Ray.

Servers: DATABASE_URL / REDIS_URL when set; else the ones on 127.0.0.1:5432 / :6379 when they answer;
else embedded servers started here. The same command therefore passes on this machine and a fresh one.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from store import Database
from store.migrate import apply_migrations


def _answers(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@pytest.fixture(scope="session")
def _embedded_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="payrisk-test-"))
    yield path


@pytest.fixture(scope="session")
def server_url(_embedded_dir: Path) -> Iterator[str]:
    """A PostgreSQL server URL (admin database) to create test databases on."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    if _answers("127.0.0.1", 5432):
        yield "postgresql://postgres@127.0.0.1:5432/postgres"
        return
    from payrisk.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(_embedded_dir, database="postgres")
    yield pg.start()
    pg.stop()


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A fresh database for this test session, migrated by the real runner, dropped afterwards."""
    name = f"payrisk_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(server_url, name)
    apply_migrations(url)
    yield url
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def redis_url(_embedded_dir: Path) -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    if _answers("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/0"
        return
    from payrisk.embedded import EmbeddedRedis

    server = EmbeddedRedis(_embedded_dir)
    yield server.start()
    server.stop()


RAY_METRICS_PORT = 0


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One local Ray for the whole session, bound to loopback with its own temp dir."""
    import ray

    global RAY_METRICS_PORT
    started = False
    if not ray.is_initialized():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            RAY_METRICS_PORT = s.getsockname()[1]
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", namespace="payrisk",
                 _temp_dir=tempfile.mkdtemp(prefix="payrisk-ray-"), log_to_driver=False,
                 _metrics_export_port=RAY_METRICS_PORT)
        started = True
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def ray_metrics_url(ray_session: None) -> str:
    """The node's Prometheus export of Ray and custom metrics (0 when another fixture started Ray)."""
    return f"http://127.0.0.1:{RAY_METRICS_PORT}/metrics"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, max_size=8)
    await database.open()
    yield database
    await database.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def admin_key(database_url: str) -> str:
    """An API key of tenant `default` with every scope (tests that call the API as its operator)."""
    from tests.support.principals import make_key

    return make_key(database_url, "default", ("admin",))


@pytest.fixture(scope="session")
def platform_key(database_url: str) -> str:
    """A platform administrator's key: may act for any tenant with `?tenant=` (recorded in the audit trail)."""
    from tests.support.principals import make_key

    return make_key(database_url, "default", ("admin",), platform=True)
