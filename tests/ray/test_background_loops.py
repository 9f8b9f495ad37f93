"""Background loops never die quietly (issue 16 point 7 / issue 13 point 4): a PostgreSQL error inside each loop,
and a restart of each background actor by Ray, are followed by passes that still run and work that still gets
done. Real Ray actors and PostgreSQL; the errors are real (the actors' server connections are terminated)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import ray
from psycopg.types.json import Jsonb

from actors.monitor import Monitor
from actors.outbox_worker import OutboxWorker
from actors.periodic import PeriodicActor, stall_after
from actors.scheduler import Scheduler
from actors.system import actor_config
from settings import load_settings

KINDS: dict[str, Any] = {"scheduler": Scheduler, "outbox": OutboxWorker, "monitor": Monitor}


def _named(database_url: str, app: str) -> str:
    return f"{database_url}{'&' if '?' in database_url else '?'}application_name={app}"


def _config(database_url: str, app: str) -> dict[str, Any]:
    settings = load_settings(environ={}, dotenv=None, database_url=database_url)
    return actor_config(settings, database_url=_named(database_url, app), autostart=0.2, shards=1)


def _until(check: Callable[[], bool], timeout: float = 40.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def _health(actor: Any) -> dict[str, Any]:
    return dict(ray.get(actor.health.remote(), timeout=30))


def _terminate(database_url: str, app: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                            (app,)).fetchall()
    return len(rows)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_postgresql_error_inside_the_loop_does_not_end_it(kind: str, database_url: str, ray_session: None) -> None:
    app = f"loop-test-{kind}-{uuid.uuid4().hex[:6]}"
    actor = KINDS[kind].options(name=f"{kind}-{app}", namespace="payrisk-tests").remote(_config(database_url, app))
    try:
        assert _until(lambda: _health(actor)["ticks"] >= 2), _health(actor)
        for _ in range(3):  # the pool keeps a connection: kill it under the loop, a few times
            assert _until(lambda: _terminate(database_url, app) > 0, 10)
            time.sleep(0.3)
        before = _health(actor)
        assert _until(lambda: _health(actor)["ticks"] >= before["ticks"] + 3), _health(actor)
        assert _health(actor)["running"] is True
    finally:
        ray.kill(actor, no_restart=True)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_background_actor_restarted_by_ray_runs_its_loop_again(kind: str, database_url: str,
                                                                 ray_session: None) -> None:
    app = f"restart-test-{kind}-{uuid.uuid4().hex[:6]}"
    actor = KINDS[kind].options(name=f"{kind}-{app}", namespace="payrisk-tests").remote(_config(database_url, app))
    try:
        assert _until(lambda: _health(actor)["ticks"] >= 1)
        ray.kill(actor, no_restart=False)  # as a crash would: Ray restarts it (max_restarts=-1)
        assert _until(lambda: _health(actor)["ticks"] >= 1 and _health(actor)["running"]), "loop not restarted"
    finally:
        ray.kill(actor, no_restart=True)


def test_after_a_restart_the_outbox_still_sends_what_is_due(database_url: str, ray_session: None) -> None:
    """A row due after the crash, and a row the dead incarnation had claimed (it died mid-delivery: its 5-minute
    lease has not run out): the restarted worker sends both at once — it takes back what it died holding."""
    app = f"restart-work-{uuid.uuid4().hex[:6]}"
    actor = OutboxWorker.options(name=f"outbox-{app}", namespace="payrisk-tests").remote(_config(database_url, app))
    keys = {"due": f"alert:{app}", "held": f"alert:{app}:held"}
    try:
        assert _until(lambda: _health(actor)["ticks"] >= 1)
        with psycopg.connect(database_url, autocommit=True) as conn:  # claimed under the actor's lease holder name
            conn.execute("INSERT INTO outbox (tenant_id, topic, idempotency_key, payload, available_at, claimed_by,"
                         " claimed_at) VALUES ('default', 'alert', %s, %s, now() - interval '1 minute', %s, now())",
                         (keys["held"], Jsonb({"kind": "engineering", "title": "held", "text": "claimed, then died"}),
                          f"outbox-worker:{actor._actor_id.hex()}"))
        ray.kill(actor, no_restart=False)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("INSERT INTO outbox (tenant_id, topic, idempotency_key, payload, available_at)"
                         " VALUES ('default', 'alert', %s, %s, now() - interval '1 minute')",
                         (keys["due"], Jsonb({"kind": "engineering", "title": "restart", "text": "after a restart"})))

        def rows() -> list[tuple[Any, ...]]:
            with psycopg.connect(database_url) as conn:
                return conn.execute("SELECT idempotency_key, sent_at, claimed_by, claimed_at, attempts, last_error"
                                    " FROM outbox WHERE idempotency_key = ANY(%s) ORDER BY 1",
                                    (list(keys.values()),)).fetchall()

        def sent() -> bool:
            return all(row[1] is not None for row in rows())

        assert _until(sent, 60), f"the restarted outbox did not send both: {rows()}, {_health(actor)}"
    finally:
        ray.kill(actor, no_restart=True)


def test_a_timer_whose_shard_is_away_is_released_for_the_next_pass_not_held_for_the_lease(
        database_url: str, ray_session: None) -> None:
    app = f"release-{uuid.uuid4().hex[:6]}"
    config = {**_config(database_url, app), "autostart": None, "shards": 256}  # no shard actor has these names
    actor = Scheduler.options(name=f"scheduler-{app}", namespace="payrisk-tests").remote(config)
    stream = f"cus_{app}"
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("INSERT INTO timers (tenant_id, stream_id, timer_key, due_at, payload)"
                         " VALUES ('default', %s, 'retry', now() - interval '1 minute', %s)",
                         (stream, Jsonb({"invoice_id": "in_x"})))
        assert ray.get(actor.tick.remote(), timeout=60) == 0  # nothing delivered
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT claimed_by, fired_at FROM timers WHERE stream_id = %s", (stream,)).fetchone()
        assert row == (None, None)  # claimable again at once
    finally:
        ray.kill(actor, no_restart=True)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM timers WHERE stream_id = %s", (stream,))


def _restarted(actor: Any) -> bool:
    """Ray has restarted `actor` and its new incarnation is up (the GCS's own record, no dashboard needed)."""
    info = ray._private.state.actors(actor._actor_id.hex())
    return bool(info["NumRestarts"] >= 1 and info["State"] == "ALIVE")


def test_a_restarted_scheduler_takes_back_the_timers_its_dead_incarnation_held(database_url: str,
                                                                               ray_session: None) -> None:
    """A timer claimed by the scheduler that then died (its 60-second lease still running): the next incarnation
    of the same actor gives it back on its first pass — here it claims it again, finds no shard, and releases it;
    before, it stayed held until the lease ran out."""
    app = f"held-{uuid.uuid4().hex[:6]}"
    config = {**_config(database_url, app), "autostart": None, "shards": 256}  # no shard actor has these names
    actor = Scheduler.options(name=f"scheduler-{app}", namespace="payrisk-tests").remote(config)
    stream = f"cus_{app}"
    try:
        assert ray.get(actor.tick.remote(), timeout=60) == 0
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("INSERT INTO timers (tenant_id, stream_id, timer_key, due_at, payload, claimed_by,"
                         " claimed_at) VALUES ('default', %s, 'retry', now() - interval '1 minute', %s, %s, now())",
                         (stream, Jsonb({"invoice_id": "in_x"}), f"scheduler:{actor._actor_id.hex()}"))
        ray.kill(actor, no_restart=False)
        assert _until(lambda: _restarted(actor), 60), "Ray did not restart the scheduler"
        assert ray.get(actor.tick.remote(), timeout=60) == 0  # the new incarnation's first pass
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT claimed_by, fired_at FROM timers WHERE stream_id = %s", (stream,)).fetchone()
        assert row == (None, None)  # not held for the rest of the lease
    finally:
        ray.kill(actor, no_restart=True)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM timers WHERE stream_id = %s", (stream,))


async def test_rows_a_dead_notifier_could_not_take_are_given_back_at_once(database_url: str,
                                                                          ray_session: None) -> None:
    from datetime import UTC, datetime, timedelta

    from actors.notifier.actor import ActorDeliverer, RemoteNotifier
    from actors.notifier.dispatch import run_once
    from actors.notifier.sender import NotifierSettings
    from store import Database

    key = f"alert:dead-notifier-{uuid.uuid4().hex[:6]}"
    settings = NotifierSettings.from_config({})
    notifier = RemoteNotifier.options(namespace="payrisk-tests", max_restarts=0).remote(settings)
    ray.kill(notifier, no_restart=True)  # its process is gone: every call to it fails
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO outbox (tenant_id, topic, idempotency_key, payload, available_at)"
                     " VALUES ('default', 'alert', %s, %s, now() - interval '1 minute')",
                     (key, Jsonb({"kind": "engineering", "title": "t", "text": "x"})))
    db = Database(database_url, max_size=2)
    await db.open()
    try:
        with pytest.raises(ray.exceptions.RayError):
            await run_once(db, ActorDeliverer([notifier], timedelta(days=1)), datetime.now(UTC), "w-dead")
    finally:
        await db.close()
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT claimed_by, sent_at FROM outbox WHERE idempotency_key = %s", (key,)).fetchone()
        conn.execute("DELETE FROM outbox WHERE idempotency_key = %s", (key,))
    assert row == (None, None)


async def test_a_notifier_left_by_an_earlier_platform_takes_the_new_settings(ray_session: None) -> None:
    """Named notifiers outlive the process that created them; the next outbox worker's settings replace theirs."""
    from datetime import UTC, datetime

    from actors.notifier.actor import RemoteNotifier
    from actors.notifier.sender import NotifierSettings

    stale = NotifierSettings.from_config({"slack_webhook_url": "http://127.0.0.1:9/gone"})  # nobody listens there
    notifier = RemoteNotifier.options(namespace="payrisk-tests", max_restarts=0).remote(stale)
    row = {"outbox_id": 1, "tenant_id": "default", "topic": "alert", "idempotency_key": f"a-{uuid.uuid4().hex[:6]}",
           "stream_id": None, "payload": {"kind": "engineering", "title": "t", "text": "x"}, "attempts": 0}
    try:
        before = await notifier.deliver_batch.remote([row], datetime.now(UTC).isoformat(), {})
        await notifier.configure.remote(NotifierSettings.from_config({}))  # the installation has no channel now
        after = await notifier.deliver_batch.remote([row], datetime.now(UTC).isoformat(), {})
    finally:
        ray.kill(notifier, no_restart=True)
    assert before[0]["status"] == "failed" and after[0]["status"] == "no_channel"


class _Failing(PeriodicActor):
    """A loop whose every pass fails (as against a database that never comes back)."""

    name = "failing"

    async def tick(self) -> int:
        raise OSError("connection refused")


async def test_a_loop_that_completes_no_pass_is_reported_stalled(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = _Failing({"clock": "real"})
    await loop.start(0.05)
    await asyncio.sleep(0.2)
    assert (await loop.health())["running"] and not (await loop.health())["stalled"]
    later = time.time() + stall_after(0.05) + 1
    monkeypatch.setattr("actors.periodic.time.time", lambda: later)
    health = await loop.health()
    assert health["stalled"] and health["failures"] >= 1 and health["last_error"].startswith("OSError")
    await loop.stop()


async def test_what_a_dead_incarnation_held_is_given_back_once_even_by_passes_side_by_side() -> None:
    """Two passes starting together release once (a second release could take back the first pass's fresh claims);
    a release that fails is tried again by the next pass."""
    loop = _Failing({"clock": "real"})
    calls: list[str] = []

    async def release() -> int:
        calls.append("release")
        await asyncio.sleep(0.05)
        return 3

    await asyncio.gather(*(loop.release_orphans_once("w", release) for _ in range(3)))
    assert calls == ["release"]

    again = _Failing({"clock": "real"})

    async def broken() -> int:
        raise OSError("connection refused")

    with pytest.raises(OSError):
        await again.release_orphans_once("w", broken)
    await again.release_orphans_once("w", release)
    assert calls == ["release", "release"]
