"""A CI-sized `payrisk chaos` run (issue 16): its own stack (PostgreSQL and Redis processes it SIGKILLs, a local
Ray cluster of three nodes, the simulator, the gateway), one of each kind of fault, every invariant checked after
each. Bounded: twelve faults, 120 simulated customers, a few minutes at most. A subprocess: it starts its own Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAULTS = ["kill_shard", "postgres_sigkill", "provider_500_after_charge", "redis_sigkill", "kill_scheduler",
          "poison_delivery", "postgres_reset", "clock_jump", "kill_outbox", "redis_flushall", "gateway_sigkill",
          "kill_ray_node"]


@pytest.mark.timeout(600)
def test_a_ci_sized_chaos_run_breaks_no_invariant() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "RAY_ADDRESS")}
    result = subprocess.run(
        [sys.executable, "-m", "payrisk.cli", "chaos", "--faults", ",".join(FAULTS), "--customers", "120",
         "--seed", "3", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=580)
    assert result.stdout.strip(), result.stderr[-3000:]
    # Ray's raylet prints into the same stdout, before, after and even on the line just before the report
    start = result.stdout.rfind('{\n  "violations"')
    assert start >= 0, (result.returncode, result.stdout[-1500:], result.stderr[-3000:])
    report, _ = json.JSONDecoder().raw_decode(result.stdout[start:])
    broken = {f["fault"]: {**{k: v for k, v in f["violations"].items() if v}, **({"left": f["left"]} if "left" in f
                                                                                else {})} for f in report["faults"]}
    assert report["violations"] == 0, ({k: v for k, v in broken.items() if v}, result.stderr[-2000:])
    assert result.returncode == 0
    assert [f["fault"] for f in report["faults"]] == FAULTS
    assert all(f["settled"] for f in report["faults"])
    assert report["deliveries"]["acknowledged"] > 50
    assert report["server_kills"] == {"postgres": 1, "redis": 1, "gateway": 1, "ray_node": 1}
    assert report["deliveries"]["answers"].get("500", 0) == 0
