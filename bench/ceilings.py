"""Ceilings measured in the same run: pgbench one-row upsert, bare Starlette, redis-benchmark SET NX EX."""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import tempfile
from glob import glob
from pathlib import Path
from typing import Any

from bench import bodies, loadwrk, procs
from bench.database import PG_HOST, PG_USER

_TPS = re.compile(r"tps = ([\d.]+) \(without initial connection time\)")
_PG_TABLE = (
    "CREATE TABLE IF NOT EXISTS bench_upsert (tenant_id text NOT NULL, provider text NOT NULL,"
    " provider_event_id text NOT NULL, body jsonb NOT NULL,"
    " UNIQUE (tenant_id, provider, provider_event_id))"
)


def pgbench_binary() -> str:
    found = shutil.which("pgbench") or next(iter(sorted(glob("/usr/lib/postgresql/*/bin/pgbench"))), None)
    if found is None:
        raise RuntimeError("pgbench not found: apt-get install -y postgresql-contrib")
    return found


def pgbench_script() -> str:
    """One-row `INSERT … ON CONFLICT DO NOTHING` of the ~2 KB webhook body as JSONB (pgbench syntax)."""
    body = json.dumps(json.loads(bodies.event_body("evt_pgbench", "cus_1", "in_1", 1_800_000_000)))
    if re.search(r":[A-Za-z0-9_]", body):
        raise ValueError("the JSON literal would look like a pgbench variable")
    literal = body.replace("'", "''")
    return (
        "\\set id random(1, 1000000000000)\n"
        "INSERT INTO bench_upsert (tenant_id, provider, provider_event_id, body) VALUES ('default', 'stripe',"
        f" 'evt_' || :id, '{literal}'::jsonb) ON CONFLICT DO NOTHING;\n"
    )


def pgbench_once(dbname: str, clients: int, seconds: int) -> dict[str, float]:
    """One pgbench run; p99 from its per-transaction log."""
    with tempfile.TemporaryDirectory(prefix="payrisk-pgbench-") as tmp:
        script = Path(tmp) / "upsert.sql"
        script.write_text(pgbench_script())
        argv = [
            pgbench_binary(),
            "-h",
            PG_HOST,
            "-U",
            PG_USER,
            "-n",
            "-M",
            "prepared",
            "-T",
            str(seconds),
            "-c",
            str(clients),
            "-j",
            str(min(clients, 2)),
            "-f",
            str(script),
            "-l",
            f"--log-prefix={tmp}/tx",
            dbname,
        ]
        out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=seconds + 60).stdout
        tps = float(_TPS.search(out).group(1))  # type: ignore[union-attr]
        latencies = sorted(int(line.split()[2]) for f in Path(tmp).glob("tx*") for line in f.open())
    return {"tps": tps, "p50_ms": _pct(latencies, 50) / 1000, "p99_ms": _pct(latencies, 99) / 1000}


def bare_starlette_once(lines_path: Path, workers: int, seconds: int) -> dict[str, float]:
    port = procs.free_port()
    with procs.serving(procs.bare_starlette(port, workers), f"http://127.0.0.1:{port}/healthz"):
        loadwrk.run(f"http://127.0.0.1:{port}", lines_path, seconds=2)  # warm-up
        s = loadwrk.run(f"http://127.0.0.1:{port}", lines_path, seconds=seconds)
    errors = sum(s["errors"].values())
    lat = s["latency_us"]
    return {
        "rps": s["rps"],
        "p50_ms": lat["p50"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "max_ms": lat["max"] / 1000,
        "errors": float(errors),
    }


def redis_once(pipeline: int, requests: int = 200_000) -> dict[str, float]:
    argv = [
        "redis-benchmark",
        "-h",
        "127.0.0.1",
        "-p",
        "6379",
        "-c",
        "50",
        "-n",
        str(requests),
        "-r",
        "100000000",
        "-P",
        str(pipeline),
        "--csv",
        "SET",
        "payrisk-bench:__rand_int__",
        "p",
        "NX",
        "EX",
        "60",
    ]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120).stdout
    row = [line for line in out.splitlines() if line and not line.startswith('"test"')][-1]
    fields = [f.strip('"') for f in row.split(",")]
    return {
        "ops": float(fields[1]),
        "p50_ms": float(fields[4]) if len(fields) > 4 else float("nan"),
        "p99_ms": float(fields[6]) if len(fields) > 6 else float("nan"),
    }


def median_of(runs: list[dict[str, float]]) -> dict[str, Any]:
    """Per-metric medians, plus the raw runs."""
    keys = runs[0].keys()
    return {**{k: statistics.median(r[k] for r in runs) for k in keys}, "runs": runs}


def measure(dbname: str, lines_path: Path, repeats: int = 3, seconds: int = 10) -> dict[str, Any]:
    """Every ceiling, `repeats` times each; medians."""
    results: dict[str, Any] = {"pgbench": {}, "starlette": {}, "redis": {}}
    for clients in (1, 16, 64):
        results["pgbench"][str(clients)] = median_of(
            [pgbench_once(dbname, clients, seconds) for _ in range(repeats)]
        )
        print(
            f"  pgbench {clients:>2} clients: {results['pgbench'][str(clients)]['tps']:,.0f} TPS", flush=True
        )
    for workers in (1, 2):
        results["starlette"][str(workers)] = median_of(
            [bare_starlette_once(lines_path, workers, seconds) for _ in range(repeats)]
        )
        print(
            f"  bare Starlette {workers} worker(s): {results['starlette'][str(workers)]['rps']:,.0f} req/s",
            flush=True,
        )
    for pipeline in (1, 16):
        results["redis"][str(pipeline)] = median_of([redis_once(pipeline) for _ in range(repeats)])
        print(
            f"  redis SET NX EX pipeline {pipeline}: {results['redis'][str(pipeline)]['ops']:,.0f} ops/s",
            flush=True,
        )
    return results


def _pct(sorted_values: list[int], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    return float(sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * pct / 100))])
