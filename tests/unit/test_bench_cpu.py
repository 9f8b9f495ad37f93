"""The demo benchmark's CPU accounting (`bench/cpu.py`): roles from process titles, and a process that burns CPU
during the sampling shows up under its role with about what it used."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.cpu import CpuSampler, role


@pytest.mark.parametrize(("name", "cmdline", "expected"), [
    ("ray::CustomerShard", ["ray::CustomerShard.apply_deliveries"], "ray::CustomerShard"),
    ("ray::IDLE", ["ray::IDLE"], "ray::IDLE"),
    ("postgres", ["postgres: postgres payrisk_demo_1 [local] idle"], "postgres"),
    ("python", ["/venv/bin/python", "-u", "-m", "payrisk.cli", "demo"], "python -m payrisk.cli"),
    ("python", ["/venv/bin/python", "-B", "-c", "from multiprocessing.spawn import spawn_main"],
     "python -c (multiprocessing worker)"),
    ("python", ["/venv/bin/python", "/venv/lib/ray/dashboard/agent.py", "--x"], "python agent.py"),
    ("redis-server", ["/usr/bin/redis-server", "127.0.0.1:6379"], "redis-server"),
    ("kworker/0:1", [], "kworker/0:1"),
])
def test_a_process_is_labelled_by_its_role(name: str, cmdline: list[str], expected: str) -> None:
    assert role(name, cmdline) == expected


def test_a_process_burning_cpu_during_the_run_is_counted_under_its_role() -> None:
    burn = "import time\nend = time.process_time() + 1.5\nwhile time.process_time() < end: pass\n"
    with CpuSampler(interval=0.2) as cpu:
        subprocess.run([sys.executable, "-m", "timeit", "-n", "1", "-r", "1", burn], check=True,
                       capture_output=True)
    used = dict(cpu.by_role()).get("python -m timeit", 0.0)
    assert 0.5 <= used <= 2.5  # its last fraction of a second before exiting may be missed
