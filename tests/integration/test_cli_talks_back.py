"""`payrisk --version` and `payrisk doctor`, run as an operator runs them: the installed command, in a fresh
directory, against the real PostgreSQL and Redis of the session and against a PostgreSQL that is not running."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

PAYRISK = str(Path(sys.executable).parent / "payrisk")


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "STRIPE_", "SMTP_",
                                                                      "RAY_ADDRESS", "PAYRISK_"))}
    return subprocess.run([PAYRISK, *args], cwd=cwd, env={**base, "PAYRISK_PORT": str(free_port()), **env},
                          capture_output=True, text=True, timeout=120, check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_version_prints_the_installed_version_and_exits_0(tmp_path: Path) -> None:
    done = run(["--version"], tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, f"payrisk {version('payrisk')}")


def test_doctor_reports_a_stopped_postgresql_in_one_line_and_fails(tmp_path: Path, redis_url: str) -> None:
    stopped = f"postgresql://payrisk:hunter2@127.0.0.1:{free_port()}/payrisk"  # nothing listens there
    done = run(["doctor"], tmp_path, DATABASE_URL=stopped, REDIS_URL=redis_url)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    about_postgres = [line for line in done.stdout.splitlines() if "postgres" in line.lower()]
    assert len(about_postgres) == 1, done.stdout
    line = about_postgres[0]
    assert line.startswith("FAIL") and "refused" in line.lower() and "DATABASE_URL" in line
    assert "hunter2" not in done.stdout + done.stderr  # the password is never printed
    redis_line = next(line for line in done.stdout.splitlines() if line.split()[1] == "redis")
    assert redis_line.startswith("ok")


def test_doctor_passes_the_running_stores_and_answers_json(tmp_path: Path, database_url: str,
                                                           redis_url: str) -> None:
    done = run(["doctor", "--json"], tmp_path, DATABASE_URL=database_url, REDIS_URL=redis_url,
               STRIPE_WEBHOOK_SECRET="whsec_doctor", STRIPE_API_KEY="sk_test_doctor")
    report = json.loads(done.stdout)
    checks = {check["name"]: check for check in report["checks"]}
    assert checks["postgresql"]["status"] == "ok" and checks["redis"]["status"] == "ok"
    assert checks["stripe api key"]["status"] == "ok" and checks["stripe webhooks"]["status"] == "ok"
    assert report["ok"] is (done.returncode == 0)
    assert {"ray", "gateway", "smtp", "webhook endpoint"} <= set(checks)


def test_migrate_and_replay_answer_one_json_object(tmp_path: Path, database_url: str) -> None:
    migrated = run(["migrate", "--json"], tmp_path, DATABASE_URL=database_url)
    assert migrated.returncode == 0, migrated.stderr
    assert json.loads(migrated.stdout) == {"applied": []}  # the session's database is already migrated
    replayed = run(["replay", "--quarantined", "--tenant", "nobody-here", "--json"], tmp_path,
                   DATABASE_URL=database_url)
    assert (replayed.returncode, json.loads(replayed.stdout)) == (0, {"replayed": 0, "still_quarantined": 0})
    verified = run(["replay", "--customer", "cus_never_seen", "--verify", "--json"], tmp_path,
                   DATABASE_URL=database_url)
    answer = json.loads(verified.stdout)
    assert answer["events"] == 0 and answer["checkpoint_version"] is None and answer["verified"] is False
    assert verified.returncode == 1
