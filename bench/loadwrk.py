"""Run wrk with bench/webhooks.lua and read back its JSON summary."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import orjson

LUA = Path(__file__).with_name("webhooks.lua")


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    return found


def run(
    base_url: str,
    lines_path: Path,
    *,
    threads: int = 2,
    connections: int = 64,
    seconds: int = 15,
    path: str = "/webhooks/stripe",
) -> dict[str, Any]:
    """One closed-loop wrk run; returns the Lua summary plus `rps` and `seconds`."""
    with tempfile.TemporaryDirectory(prefix="payrisk-wrk-") as tmp:
        summary_path = Path(tmp) / "summary.json"
        env = dict(os.environ, BENCH_BODIES=str(lines_path), BENCH_PATH=path, BENCH_SUMMARY=str(summary_path))
        argv = [
            wrk_binary(),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
            base_url,
            "--",
            str(threads),
        ]
        subprocess.run(argv, env=env, check=True, capture_output=True, timeout=seconds + 120)
        summary: dict[str, Any] = orjson.loads(summary_path.read_bytes())
    summary["seconds"] = summary["duration_us"] / 1e6
    summary["rps"] = summary["requests"] / summary["seconds"]
    summary["threads_n"], summary["connections"] = threads, connections
    return summary
