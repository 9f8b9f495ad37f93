"""The notifier pool on a real local Ray: named actors deliver outbox batches and survive a kill."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import ray
from pydantic import SecretStr

from actors.notifier.actor import ActorDeliverer, notifier_pool
from actors.notifier.catcher import CatcherHandle, start_catcher
from actors.notifier.sender import NotifierSettings

NOW = datetime(2025, 3, 4, 14, tzinfo=UTC)


@pytest.fixture
def catcher(tmp_path: Path) -> Iterator[CatcherHandle]:
    handle = start_catcher(0, tmp_path / "mail")
    yield handle
    handle.stop()


@pytest.fixture
def pool_of_two(ray_session: None, catcher: CatcherHandle) -> Iterator[list[Any]]:
    settings = NotifierSettings(smtp_url=SecretStr(catcher.smtp_url), mail_from="billing@payrisk.test")
    handles = notifier_pool(2, settings)
    yield handles
    for handle in handles:
        ray.kill(handle, no_restart=True)
    for index in range(2):  # the next test must get fresh actors (with its own settings), not these
        wait_for(lambda name=f"notifier-{index}": not _exists(name))


def _exists(name: str) -> bool:
    try:
        ray.get_actor(name, namespace="payrisk")
    except ValueError:
        return False
    return True


def row(outbox_id: int) -> dict[str, Any]:
    payload = {
        "template": "payment_failed",
        "to": f"c{outbox_id}@example.com",
        "customer_id": f"c{outbox_id}",
        "invoice_id": f"in_{outbox_id}",
        "amount_due": 900,
        "currency": "gbp",
        "timezone": "Europe/London",
        "branding": {"name": "Acme", "support_email": "help@acme.test"},
    }
    return {
        "outbox_id": outbox_id,
        "tenant_id": "acme",
        "topic": "email",
        "idempotency_key": f"k{outbox_id}",
        "payload": payload,
        "attempts": 0,
    }


def wait_for(predicate: Any) -> None:
    for _ in range(500):
        if predicate():
            return
        time.sleep(0.01)


def test_the_pool_is_named_notifier_n_in_the_payrisk_namespace(pool_of_two: list[Any]) -> None:
    for index in range(2):
        found = ray.get_actor(f"notifier-{index}", namespace="payrisk")
        reply: Any = ray.get(found.ping.remote())
        assert reply == "pong"


async def test_batches_sent_through_the_pool_reach_the_mail_server_once(
    pool_of_two: list[Any], catcher: CatcherHandle
) -> None:
    deliverer = ActorDeliverer(pool_of_two, timedelta(days=7))
    first = await deliverer.deliver_many([row(1), row(2)], NOW, {})
    second = await deliverer.deliver_many([row(3)], NOW, {})
    assert [r.status for r in first + second] == ["sent", "sent", "sent"]
    wait_for(lambda: len(catcher.messages) >= 3)
    assert sorted(m["To"] for m in catcher.messages) == ["c1@example.com", "c2@example.com", "c3@example.com"]


def test_a_killed_notifier_restarts_and_keeps_delivering(
    pool_of_two: list[Any], catcher: CatcherHandle
) -> None:
    victim = pool_of_two[0]
    ray.kill(victim, no_restart=False)
    results: list[dict[str, Any]] = []
    for _ in range(100):  # calls fail until Ray has restarted the actor
        try:
            results = ray.get(victim.deliver_batch.remote([row(4)], NOW.isoformat(), {}))
            break
        except ray.exceptions.RayActorError:
            time.sleep(0.1)
    assert [r["status"] for r in results] == ["sent"]
    wait_for(lambda: catcher.messages)
    assert [m["To"] for m in catcher.messages] == ["c4@example.com"]
