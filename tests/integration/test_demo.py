"""`payrisk demo` end to end in a subprocess: real PostgreSQL and Redis (the test servers), a local Ray of its
own, the simulator and the gateway — webhooks handed to the gateway's ingest in-process (the default) and, with
`--http`, signed POSTs over HTTP. A small population keeps it short; the numbers are checked for integrity and for
the platform doing at least as well as not retrying at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=["in-process", "http"])
def demo(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory,
         request: pytest.FixtureRequest) -> dict[str, Any]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "PAYRISK_DATA_DIR": str(tmp_path_factory.mktemp("demo-data")),
    }
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "payrisk.cli",
            "demo",
            "--customers",
            "60",
            "--days",
            "30",
            "--seed",
            "7",
            "--json",
            *(["--http"] if request.param == "http" else []),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, "--json prints exactly one JSON object on stdout"
    summary = json.loads(lines[0])
    assert summary["run"]["delivery"] == request.param
    return {"summary": summary, "progress": done.stderr, "database_url": database_url}


def test_the_demo_prints_one_summary_with_every_approach_and_the_checks(demo: dict[str, Any]) -> None:
    summary = demo["summary"]
    assert set(summary) == {"run", "platform", "no_retry", "fixed_schedule", "fixed_8_in_14", "checks"}
    for name in ("platform", "no_retry", "fixed_schedule", "fixed_8_in_14"):
        row = summary[name]
        assert {"failed", "recovered", "retries", "revenue_failed", "revenue_saved", "recovery_rate"} <= set(
            row
        )
        assert 0 <= row["recovered"] <= row["failed"]
    assert summary["run"]["customers"] == 60 and summary["run"]["days"] == 30
    assert summary["run"]["customer_days_per_second"] > 0


def test_the_three_approaches_meet_the_same_failed_renewals(demo: dict[str, Any]) -> None:
    s = demo["summary"]
    assert s["platform"]["failed"] == s["no_retry"]["failed"] == s["fixed_schedule"]["failed"] > 0
    assert s["fixed_8_in_14"]["failed"] == s["platform"]["failed"] and s["fixed_8_in_14"]["retries"] > 0
    assert s["run"]["model"] == "default" and s["run"]["customer_actions"] >= 0
    assert s["platform"]["revenue_failed"] == s["no_retry"]["revenue_failed"]


def test_nothing_was_charged_twice_and_every_acknowledged_delivery_was_applied(demo: dict[str, Any]) -> None:
    checks = demo["summary"]["checks"]
    assert checks["double_charges"] == 0
    assert set(checks["charges_per_attempt"]) <= {"1"}  # each attempt's key reached the provider once
    d = checks["deliveries"]
    assert d["acknowledged"] == d["stored"] == d["applied"] + d["ignored"] > 0
    assert d["pending"] == 0 and d["quarantined"] == 0
    assert all(n == 0 for n in checks["network_violations"].values())
    assert checks["platform_revenue_matches_ledger"] and checks["passed"]


def test_the_platform_saves_at_least_what_not_retrying_saves(demo: dict[str, Any]) -> None:
    s = demo["summary"]
    assert s["platform"]["recovered"] >= s["no_retry"]["recovered"] == 0
    for currency, amount in s["no_retry"]["revenue_saved"].items():
        assert s["platform"]["revenue_saved"].get(currency, 0) >= amount
    assert s["no_retry"]["retries"] == 0 and s["fixed_schedule"]["retries"] > 0


def test_progress_is_shown_for_every_simulated_day(demo: dict[str, Any]) -> None:
    days = [line for line in demo["progress"].splitlines() if line.startswith("day ")]
    assert len(days) == 30 and "deliveries" in days[-1]


def test_the_run_used_a_database_of_its_own_and_dropped_it(demo: dict[str, Any]) -> None:
    name = f"payrisk_demo_{demo['summary']['run']['id_namespace']}"
    with psycopg.connect(demo["database_url"]) as conn:
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone()
    assert left == (0,)
