"""Where a benchmark's CPU went: CPU seconds per process, by role, over a run.

Every process on the machine is sampled once a second (`psutil`); a process that existed before the run counts
only what it used during it, one that started during the run everything it used (a process is last seen up to a
second before it exits: its final second is not counted). Processes are labelled by role — a Ray actor by its
class (`ray::CustomerShard`, from the process title Ray gives it; a worker started before it became the actor
counts under the actor), PostgreSQL and Redis by program, a Python
program by its module or script — so that two shards add up as one line. Machine services that have nothing to do
with the run show up too: that is the point (they share the cores).
"""

from __future__ import annotations

import threading
from collections import Counter
from types import TracebackType
from typing import Any

import psutil

_PYTHON_FLAGS = {"-u", "-B", "-E", "-s", "-O"}


def role(name: str, cmdline: list[str]) -> str:
    """A process's role: `ray::CustomerShard`, `postgres`, `redis-server`, `python -m payrisk.cli`, …"""
    title = " ".join(cmdline) if cmdline else name
    if title.startswith("ray::"):
        return title.split()[0].split(".")[0]  # `ray::CustomerShard.apply_deliveries` → `ray::CustomerShard`
    if title.startswith("postgres") or name == "postgres":
        return "postgres"
    program = cmdline[0].rsplit("/", 1)[-1] if cmdline else name
    if program.startswith("python"):
        args = [a for a in cmdline[1:] if a not in _PYTHON_FLAGS]
        if args[:1] == ["-m"] and len(args) > 1:
            return f"python -m {args[1]}"
        if args[:1] == ["-c"]:
            return "python -c (" + ("multiprocessing worker" if "multiprocessing" in " ".join(args) else "code") + ")"
        return f"python {args[0].rsplit('/', 1)[-1]}" if args else "python"
    return program or name


def _actor(label: str) -> bool:
    return label.startswith("ray::") and label != "ray::IDLE"


class CpuSampler:
    """`with CpuSampler() as cpu: …` then `cpu.by_role()` (CPU seconds per role, largest first)."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._start: dict[int, float] = {}  # CPU seconds at the first sample, for processes already running
        self._last: dict[int, tuple[str, float]] = {}  # role and CPU seconds at the latest sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def __enter__(self) -> CpuSampler:
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(first=False)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample(first=False)

    def _sample(self, first: bool) -> None:
        for proc in psutil.process_iter(["pid", "name", "cmdline", "cpu_times"]):
            info: dict[str, Any] = proc.info
            times = info.get("cpu_times")
            if times is None:
                continue
            used = float(times.user + times.system)
            pid = int(info["pid"])
            if first:
                self._start[pid] = used
            label = role(info.get("name") or "", info.get("cmdline") or [])
            previous = self._last.get(pid)
            if previous is not None and (not info.get("cmdline") or _actor(previous[0]) and not _actor(label)):
                # an exiting process has no command line any more; a Ray worker keeps its actor's name
                label = previous[0]
            self._last[pid] = (label, used)

    def by_role(self) -> list[tuple[str, float]]:
        totals: Counter[str] = Counter()
        for pid, (label, used) in self._last.items():
            totals[label] += max(0.0, used - self._start.get(pid, 0.0))
        return [(label, round(seconds, 1)) for label, seconds in totals.most_common() if seconds >= 0.05]
