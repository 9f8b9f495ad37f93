"""`payrisk up` as a user runs it: embedded PostgreSQL and Redis, a local Ray, readiness, clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

PAYRISK = [sys.executable, "-m", "payrisk.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "RAY_ADDRESS") and not k.startswith("PAYRISK_")}
    env.update(extra)
    return env


def test_up_on_the_embedded_default_is_ready_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([*PAYRISK, "up", "--port", str(port), "--data-dir", str(tmp_path / "data"),
                             "--no-dashboard"], env=clean_env(PAYRISK_SHARDS="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        body = _wait_ready(port, proc, timeout=180)
        assert body["ready"] is True
        assert set(body["dependencies"]) == {"postgres", "redis", "ray", "loops"}
        assert all(dep["ready"] for dep in body["dependencies"].values()), body
        loops = body["dependencies"]["loops"]["loops"]  # type: ignore[index]
        assert {name: (h["running"], h["stalled"]) for name, h in loops.items()} == {
            "scheduler": (True, False), "outbox": (True, False), "monitor": (True, False)}
        tree = {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
        pg_pid = int((tmp_path / "data" / "postgres" / "postmaster.pid").read_text().split()[0])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0
        out, err = (stream.decode() for stream in proc.communicate())
        assert "Ray metrics       http://127.0.0.1:" in out and "prom_metrics_service_discovery.json" in out
        not_json = [line for line in err.splitlines() if line.strip() and not _json_object(line)]
        assert not_json == [], not_json[:5]  # one log stream: every stderr line is a JSON object
        time.sleep(1.0)
        survivors = [pid for pid in tree | {pg_pid} if psutil.pid_exists(pid)
                     and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        assert survivors == [], f"orphans left: {[psutil.Process(p).cmdline()[:3] for p in survivors]}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"payrisk up exited with {proc.returncode}: {err.decode()[-2000:]}")
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            last = response.json()
            if response.status_code == 200:
                return dict(response.json())
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(1.0)
    pytest.fail(f"not ready after {timeout}s: {last}")


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        ({"DATABASE_URL": "mysql://nope"}, [], "invalid setting DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x", "REDIS_URL": "redis://127.0.0.1:6379/0"}, [],
         "DATABASE_URL: cannot connect"),
        ({"PAYRISK_PORT": "99999"}, [], "invalid setting PAYRISK_PORT"),
    ],
)
def test_bad_settings_give_one_clear_line_and_a_non_zero_exit(env: dict[str, str], args: list[str],
                                                              expected: str, tmp_path: Path) -> None:
    result = subprocess.run([*PAYRISK, "up", "--data-dir", str(tmp_path), *args], env=clean_env(**env),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_a_port_in_use_gives_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([*PAYRISK, "up", "--port", str(port), "--data-dir", str(tmp_path)],
                                env=clean_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "cannot listen on 127.0.0.1" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_every_subcommand_has_help() -> None:
    for args in (["--help"], ["up", "--help"], ["migrate", "--help"], ["replay", "--help"], ["demo", "--help"],
                 ["strategies", "validate", "--help"], ["strategies", "explain", "--help"], ["simulator", "--help"]):
        result = subprocess.run([*PAYRISK, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "usage:" in result.stdout, args


def test_several_gateway_workers_hand_deliveries_to_the_shards(tmp_path: Path, database_url: str,
                                                               redis_url: str, platform_key: str) -> None:
    import uuid

    from tests.support.principals import bearer
    from tests.support.stripe_events import SECRET, envelope, invoice, sign

    port = free_port()
    env = clean_env(DATABASE_URL=database_url, REDIS_URL=redis_url, STRIPE_WEBHOOK_SECRET=SECRET,
                    PAYRISK_SHARDS="1")
    proc = subprocess.Popen([*PAYRISK, "up", "--port", str(port), "--workers", "2", "--no-dashboard",
                             "--data-dir", str(tmp_path / "data")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        _wait_ready(port, proc, timeout=180)
        tag = uuid.uuid4().hex[:6]
        for i in range(10):
            body = envelope(f"evt_w_{tag}_{i}", "invoice.payment_failed", invoice(f"in_w_{tag}_{i}", f"cus_w_{tag}_{i}",
                                                                                 pi=None))
            response = httpx.post(f"http://127.0.0.1:{port}/webhooks/stripe", content=body,
                                  headers={"stripe-signature": sign(body)}, timeout=10)
            assert response.status_code == 200
        deadline = time.monotonic() + 60
        applied = 0
        while time.monotonic() < deadline and applied < 10:
            rows = httpx.get(f"http://127.0.0.1:{port}/api/deliveries?status=applied&limit=1000",
                             headers=bearer(platform_key), timeout=10).json()["data"]
            applied = sum(1 for r in rows if r["provider_event_id"].startswith(f"evt_w_{tag}_"))
            time.sleep(0.5)
        assert applied == 10
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=bearer(platform_key), timeout=10).text
        # counted in whichever worker answered, summed across both on /metrics
        assert 'payrisk_deliveries_total{outcome="received",provider="stripe"} 10.0' in metrics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
