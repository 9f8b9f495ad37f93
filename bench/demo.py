"""The simulation's speed: `payrisk demo` at a population and a number of days, timed, with its integrity checks.

    .venv/bin/python -m bench.demo --customers 10000 --days 30           # the issue's goal: < 60 s wall
    .venv/bin/python -m bench.demo --customers 100000 --days 30          # goal: < 10 min wall
    .venv/bin/python -m bench.demo --customers 10000 --days 30 --http    # every webhook over HTTP, signed
    .venv/bin/python -m bench.demo --customers 10000 --days 30 --cpu     # + CPU seconds per process role

Runs the real command in a subprocess (its own database on DATABASE_URL's server, or the embedded one; a local
Ray of its own), with `--json`, and prints one line: wall seconds (the whole command, baselines included), the
platform's part, customer-days per second, deliveries, the checks' verdict, and the load average before and after
(the machine is shared: read every number beside it), and the machine's Python speed before and after the run
(`bench/calibrate.py`: a fixed workload's best time; the same code's wall time moves with it from day to day).
`--out FILE` also writes the summary and the timings as JSON.
`--cpu` adds the CPU seconds each role of process used during the run (`bench/cpu.py`: the shards, the demo's
own process, PostgreSQL, the baselines, …, and whatever else ran on the machine), and their sum against the cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.calibrate import calibrate
from bench.cpu import CpuSampler


def run(customers: int, days: int, seed: int, http: bool, model: str, cpu: bool = False) -> dict[str, Any]:
    command = [sys.executable, "-m", "payrisk.cli", "demo", "--customers", str(customers), "--days", str(days),
               "--seed", str(seed), "--model", model, "--json", *(["--http"] if http else [])]
    load_before = os.getloadavg()
    speed_before = calibrate()  # the machine's Python speed in this sitting (bench/calibrate.py)
    sampler = CpuSampler() if cpu else None
    started = time.monotonic()
    with sampler or contextlib.nullcontext():
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    if done.returncode not in (0, 1):  # 1: a check failed, still a summary to report
        raise SystemExit(f"payrisk demo exited {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    result = {"command": " ".join(command[2:]), "wall_seconds": round(wall, 1), "summary": summary,
              "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
              "calibration": {"before": speed_before, "after": calibrate()}}
    if sampler is not None:
        result["cpu_seconds"] = dict(sampler.by_role())
        result["cores"] = os.cpu_count()
    return result


def line(result: dict[str, Any]) -> str:
    s, r = result["summary"], result["summary"]["run"]
    d = s["checks"]["deliveries"]
    return (f"{r['customers']:,} customers × {r['days']} days ({r['delivery']}): {result['wall_seconds']:,.1f} s wall, "
            f"{r['platform_seconds']:,.1f} s platform, {r['customer_days_per_second']:,.0f} customer-days/s, "
            f"{d['stored']:,} deliveries, checks {'passed' if s['checks']['passed'] else 'FAILED'}; "
            f"recovered {s['platform']['recovered']:,} of {s['platform']['failed']:,} "
            f"(8-in-14: {s['fixed_8_in_14']['recovered']:,}); load {result['load_before'][0]} → "
            f"{result['load_after'][0]}" + _calibration(result) + _phases(r.get("phases") or {}) + _cpu(result))


def _calibration(result: dict[str, Any]) -> str:
    """`; calibration 0.203 / 0.210 s` (best before / after the run: bench/calibrate.py, lower is faster)."""
    speed = result.get("calibration")
    return f"; calibration {speed['before']['best']:.3f} / {speed['after']['best']:.3f} s" if speed else ""


def _cpu(result: dict[str, Any]) -> str:
    """`; cpu 130.2 s of 158.0 (82 %): ray::CustomerShard 33.5 s, …` (the top ten roles)."""
    cpu: dict[str, float] | None = result.get("cpu_seconds")
    if not cpu:
        return ""
    total, capacity = sum(cpu.values()), result["wall_seconds"] * (result.get("cores") or 1)
    top = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in list(cpu.items())[:10])
    return f"; cpu {total:.1f} s of {capacity:.1f} ({total / capacity:.0%}): {top}"


def _phases(phases: dict[str, float]) -> str:
    """`; phases store 30.1 s, apply 28.0 s, …`, largest first (the driver's wall time by step phase)."""
    times = sorted(((k, v) for k, v in phases.items() if not k.startswith("n_")), key=lambda kv: -kv[1])
    return "; phases " + ", ".join(
        f"{k} {v:.1f} s" + (f" ({phases['n_' + k]:.0f}×)" if "n_" + k in phases else "") for k, v in times
    ) if phases else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model", default="default")
    parser.add_argument("--http", action="store_true", help="webhooks over HTTP, signed (the slower, full path)")
    parser.add_argument("--cpu", action="store_true", help="CPU seconds per process role during the run")
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    result = run(args.customers, args.days, args.seed, args.http, args.model, cpu=args.cpu)
    print(line(result), flush=True)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["summary"]["checks"]["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
