"""The simulated clock read from its shared copy: an actor on this machine sees every `set` as soon as it returned,
without a call to the clock actor, and follows a clock that was replaced; a process that cannot map the copy asks
the actor (same answers)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import ray

from actors.clock import SharedTime, SimClock, SimClockActor

T0 = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


@ray.remote(num_cpus=0)
class Reader:
    def __init__(self, name: str, namespace: str) -> None:
        self.clock = SimClock(ray.get_actor(name, namespace=namespace))

    async def now(self) -> str:
        return (await self.clock.now()).isoformat()

    def mapped(self) -> bool:
        return self.clock._shared is not None


def _clock(name: str, namespace: str, start: datetime) -> object:
    return SimClockActor.options(name=name, namespace=namespace).remote(start.isoformat())


def test_shared_time_round_trips_microseconds_and_another_process_reads_it() -> None:
    shared, fd = SharedTime.create()
    for at in (T0, T0 + timedelta(days=400, microseconds=1), datetime(1969, 12, 31, 23, 59, tzinfo=UTC)):
        shared.write(at)
        assert shared.read() == at
    shared.write(T0)
    code = ("import sys; from actors.clock import SharedTime; "
            "s = SharedTime.attach(int(sys.argv[1]), int(sys.argv[2])); print(s.read().isoformat() if s else None)")
    out = subprocess.run([sys.executable, "-c", code, str(os.getpid()), str(fd)], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == T0.isoformat()
    assert SharedTime.attach(os.getpid(), 987654) is None  # no such descriptor: the reader will ask the actor


def test_a_reader_sees_each_set_at_once_from_the_shared_copy(ray_session: None) -> None:
    namespace, name = "clock-test", f"clock-{uuid.uuid4().hex[:8]}"
    clock = _clock(name, namespace, T0)
    reader = Reader.remote(name, namespace)
    try:
        assert ray.get(reader.now.remote()) == T0.isoformat()
        assert ray.get(reader.mapped.remote())  # mapped, not asking the actor
        at = T0
        for step in range(50):
            at += timedelta(minutes=37, microseconds=step)
            ray.get(clock.set.remote(at.isoformat()))
            assert ray.get(reader.now.remote()) == at.isoformat()
        ray.get(clock.set.remote((T0 - timedelta(days=1)).isoformat()))  # never backwards
        assert ray.get(reader.now.remote()) == at.isoformat()
        ray.get(clock.advance.remote(3600))
        assert ray.get(reader.now.remote()) == (at + timedelta(hours=1)).isoformat()
    finally:
        ray.kill(reader)
        ray.kill(clock)


def test_a_reader_whose_clock_died_asks_again_instead_of_reading_a_frozen_time(ray_session: None) -> None:
    namespace, name = "clock-test", f"clock-{uuid.uuid4().hex[:8]}"
    clock = SimClockActor.options(name=name, namespace=namespace, max_restarts=1,  # as start_sim_clock's: its
                                  max_task_retries=-1).remote(T0.isoformat())  # calls survive the restart
    reader = Reader.remote(name, namespace)
    try:
        ray.get(clock.set.remote((T0 + timedelta(hours=5)).isoformat()))
        assert ray.get(reader.now.remote()) == (T0 + timedelta(hours=5)).isoformat()
        old_pid = ray.get(clock.shared.remote())[0]
        ray.kill(clock, no_restart=False)  # restarted by Ray: a new process, a new shared copy
        # the kill is asynchronous: wait for the old process to be gone (a call sent before could still reach it)
        deadline = time.monotonic() + 30
        while os.path.exists(f"/proc/{old_pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
        ray.get(clock.set.remote((T0 + timedelta(hours=9)).isoformat()))
        assert ray.get(reader.now.remote()) == (T0 + timedelta(hours=9)).isoformat()  # asked: its copy is gone
        assert ray.get(reader.now.remote()) == (T0 + timedelta(hours=9)).isoformat()
        assert ray.get(reader.mapped.remote())  # mapped the new copy again
    finally:
        ray.kill(reader)
        ray.kill(clock)
