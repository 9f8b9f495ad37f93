"""Markdown for docs/bench-ingest.md: machine, ceilings, ingest, ratios, goals, profile."""

from __future__ import annotations

import platform
import subprocess
from typing import Any

GOALS = "/work/shared/notes/performance-on-this-machine.md"


def _sh(command: str) -> str:
    return subprocess.run(command, shell=True, capture_output=True, text=True).stdout.strip()


def machine(command: str, date: str) -> str:
    versions = _sh("psql -h 127.0.0.1 -U postgres -Atc 'show server_version'") or "?"
    redis_version = _sh("redis-cli -h 127.0.0.1 info server | grep redis_version | tr -d '\\r'") or "?"
    import uvicorn

    return "\n".join(
        [
            f"Recorded {date} with `{command}` (Python {platform.python_version()},"
            f" uvicorn {uvicorn.__version__}, PostgreSQL {versions}, {redis_version},"
            f" {_sh('wrk --version 2>&1 | head -1').split(' [')[0]}).",
            "Other work ran beside the measurements: every number is the **median of 3 runs**;"
            " read them as ±15 %.",
            "",
            "```",
            f"$ nproc\n{_sh('nproc')}",
            f"$ lscpu | head -15\n{_sh('lscpu | head -15')}",
            f"$ free -g\n{_sh('free -g')}",
            "```",
            "",
        ]
    )


def ceilings_md(c: dict[str, Any]) -> str:
    rows = ["| Ceiling | throughput | p50 | p99 |", "|---|---|---|---|"]
    for clients, r in c["pgbench"].items():
        rows.append(
            f"| pgbench one-row `INSERT … ON CONFLICT DO NOTHING`, ~2 KB JSONB, {clients} client(s) |"
            f" {r['tps']:,.0f} TPS | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms |"
        )
    for workers, r in c["starlette"].items():
        rows.append(
            f"| bare Starlette POST, orjson parse of ~2 KB, {workers} uvicorn worker(s), wrk -t2 -c64 |"
            f" {r['rps']:,.0f} req/s | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms |"
        )
    for pipeline, r in c["redis"].items():
        rows.append(
            f"| redis-benchmark `SET key p NX EX 60`, 50 clients, pipeline {pipeline} |"
            f" {r['ops']:,.0f} ops/s | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms |"
        )
    return "## Ceilings (same run)\n\n" + "\n".join(rows) + "\n"


_SCENARIOS = (
    ("saturation_unique", "saturation, wrk -t2 -c64, all unique"),
    ("saturation_dup20", "saturation, wrk -t2 -c64, 20 % duplicates"),
    ("rate_500", "open loop 500 req/s, unique"),
    ("rate_1000", "open loop 1,000 req/s, unique"),
    ("rate_2000", "open loop 2,000 req/s, unique"),
    ("rate_1000_dup20", "open loop 1,000 req/s, 20 % dup"),
)


def ingest_md(ingest: dict[str, Any]) -> str:
    rows = [
        "| Workers | Scenario | req/s (open loop: offered) | p50 | p99 | max | non-2xx / socket err"
        " | acked; missing; stored twice |"
        " drain after | webhook→applied p50 / p99 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for workers, results in ingest.items():
        for key, label in _SCENARIOS:
            if key not in results:
                continue
            r = results[key]
            rps = r.get("rps", r.get("achieved_rps", 0.0))
            acked = r.get("acked", r.get("acked_new", 0) + r.get("acked_duplicate", 0))
            e2e = (
                f"{r['e2e_p50_ms'] / 1000:.1f} s / {r['e2e_p99_ms'] / 1000:.1f} s"
                if "e2e_p50_ms" in r
                else "—"
            )
            rows.append(
                f"| {workers} | {label} | {rps:,.0f} | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms |"
                f" {r['max_ms']:.0f} ms | {r['non_2xx']:.0f} / {r.get('socket_errors', 0):.0f} |"
                f" {acked:,.0f}; {r['acked_missing']:.0f}; {r['stored_twice']:.0f} |"
                f" {_drain(r)} | {e2e} |"
            )
    return "## Ingest through `payrisk up --no-dashboard`\n\n" + "\n".join(rows) + "\n"


def _drain(r: dict[str, Any]) -> str:
    """Seconds the decisions needed after the run; "—" for the gateway alone (nothing applies deliveries)."""
    return f"{r['drain_s']:.0f} s" if "drain_s" in r else "—"


def ratios_md(ceilings: dict[str, Any], ingest: dict[str, Any]) -> str:
    rows = [
        "| Workers | ingest req/s (saturation, unique) | ÷ bare Starlette (same workers) |"
        " ÷ pgbench 1 client | ÷ pgbench 64 clients |",
        "|---|---|---|---|---|",
    ]
    for workers, results in ingest.items():
        rps = results["saturation_unique"]["rps"]
        bare = ceilings["starlette"].get(workers, {}).get("rps", float("nan"))
        pg1, pg64 = ceilings["pgbench"]["1"]["tps"], ceilings["pgbench"]["64"]["tps"]
        rows.append(f"| {workers} | {rps:,.0f} | {rps / bare:.0%} | {rps / pg1:.2f}× | {rps / pg64:.2f}× |")
    return "## Ingest as a ratio to the ceilings\n\n" + "\n".join(rows) + "\n"


def goals_md(ceilings: dict[str, Any], ingest: dict[str, Any]) -> str:
    two = ingest.get("2") or next(iter(ingest.values()))
    bare2 = ceilings["starlette"].get("2", ceilings["starlette"]["1"])["rps"]
    sat, r1000, r500 = two["saturation_unique"], two.get("rate_1000", {}), two.get("rate_500", {})
    lines = [
        f"## Against the goals ({GOALS})",
        "",
        "| Goal | Measured (2 workers) | Verdict |",
        "|---|---|---|",
        f"| ingest ≥ 40 % of bare Starlette | {sat['rps'] / bare2:.0%} ({sat['rps']:,.0f} of {bare2:,.0f}"
        f" req/s) | {_verdict(sat['rps'] / bare2 >= 0.4)} |",
        f"| p99 ≤ 40 ms at 64 concurrent senders | {sat['p99_ms']:.0f} ms"
        f" | {_verdict(sat['p99_ms'] <= 40)} |",
    ]
    if r1000:
        ok = r1000["p50_ms"] <= 4 and r1000["p99_ms"] <= 10
        lines.append(
            f"| p50 ≤ 4 ms / p99 ≤ 10 ms at 1,000 req/s | {r1000['p50_ms']:.1f} / {r1000['p99_ms']:.1f}"
            f" ms | {_verdict(ok)} |"
        )
    if r500.get("e2e_p99_ms"):
        lines.append(
            f"| webhook → checkpoint p99 < 100 ms at 500 events/s | {r500['e2e_p99_ms']:,.0f} ms |"
            f" {_verdict(r500['e2e_p99_ms'] < 100)} |"
        )
    lines.append(
        "| reference prototype (notes): ~6.2k req/s, p99 ~35 ms, 2 workers |"
        f" {sat['rps']:,.0f} req/s, p99 {sat['p99_ms']:.0f} ms | {sat['rps'] / 6200:.0%} of it |"
    )
    return "\n".join(lines) + "\n"


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"
