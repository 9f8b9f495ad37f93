"""Several Ray nodes on this machine: removing the node that hosts a shard loses and duplicates nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_removing_the_node_hosting_a_shard_loses_no_event_and_applies_none_twice(database_url: str,
                                                                                 redis_url: str) -> None:
    # A separate process: this test session already owns a single-node Ray.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_TMPDIR": tempfile.mkdtemp(prefix="payrisk-rc-")}
    result = subprocess.run([sys.executable, "-m", "tests.ray.cluster_scenario", database_url, redis_url],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    facts = json.loads(next(line for line in reversed(result.stdout.splitlines()) if line.startswith("{")))
    assert facts["node_after"] != facts["node_before"]  # the shard came back on another node
    assert facts["applied"] == 60  # every acknowledged delivery applied
    assert len(facts["failures_per_customer"]) == 40
    assert set(facts["failures_per_customer"].values()) <= {1, 2}
    assert sum(facts["failures_per_customer"].values()) == 60  # none applied twice
