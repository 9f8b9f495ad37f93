"""The classifier pool on a real local Ray: named actors, ordered batches, tenant views, unknown counts,
restarts."""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from actors.classifier import NAMESPACE, ClassifierActor, ClassifierPool, Item, inline_classifier
from actors.domain.classification import Category, classify, default_tables, load_tables
from actors.domain.inbound import DeclineInfo

SAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("stripe", {"decline_code": "insufficient_funds"}),
    (
        "stripe",
        {"decline_code": "insufficient_funds", "network_advice_code": "21", "card_brand": "mastercard"},
    ),
    ("stripe", {"decline_code": "generic_decline", "outcome_reason": "highest_risk_level"}),
    ("stripe", {"http_status": 429}),
    ("stripe", {"http_status": 401}),
    ("stripe", {"decline_code": "never_seen_before"}),
    ("adyen", {"decline_code": "Not enough balance"}),
    ("braintree", {"decline_code": "2047"}),
    ("paddle", {"error_code": "declined_not_retryable"}),
]


@pytest.fixture(scope="module")
def ray_running() -> Iterator[None]:
    """Reuse the Ray this process already runs (the suite's session), else start one for this module."""
    if ray.is_initialized():
        yield
        return
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        _temp_dir=tempfile.mkdtemp(prefix="payrisk-ray-"),
        namespace=NAMESPACE,
        log_to_driver=False,
    )
    yield
    ray.shutdown()


@pytest.fixture
def pool_prefix(ray_running: None) -> str:
    """A prefix of our own, so tests never pick up each other's actors through get_if_exists."""
    return f"classifier-test-{uuid.uuid4().hex[:8]}"


def items(count: int, tenant: str = "acme") -> list[Item]:
    return [(tenant, *SAMPLES[index % len(SAMPLES)]) for index in range(count)]


def test_the_pool_creates_named_actors_in_the_payrisk_namespace(pool_prefix: str) -> None:
    pool = ClassifierPool(3, prefix=pool_prefix)
    try:
        assert pool.names == [f"{pool_prefix}-0", f"{pool_prefix}-1", f"{pool_prefix}-2"]
        for name in pool.names:
            assert ray.get(ray.get_actor(name, namespace=NAMESPACE).table_versions.remote())["stripe"] >= 1
    finally:
        pool.kill()


def test_a_second_pool_with_the_same_names_reuses_the_running_actors(pool_prefix: str) -> None:
    first = ClassifierPool(2, prefix=pool_prefix)
    try:
        second = ClassifierPool(2, prefix=pool_prefix)
        assert [h._actor_id for h in second.handles] == [h._actor_id for h in first.handles]
    finally:
        first.kill()


def test_batches_through_the_pool_equal_the_pure_function_in_input_order(pool_prefix: str) -> None:
    pool = ClassifierPool(2, prefix=pool_prefix)
    try:
        work = items(250)
        results = pool.classify(work, batch_size=100)
        tables = default_tables()
        expected = [classify(p, DeclineInfo.model_validate(d), tables.for_tenant(t)) for t, p, d in work]
        assert results == expected
    finally:
        pool.kill()


def test_unknown_codes_are_counted_per_provider_and_code_across_the_pool(pool_prefix: str) -> None:
    pool = ClassifierPool(2, prefix=pool_prefix)
    try:
        work: list[Item] = [("acme", "stripe", {"decline_code": "never_seen_before"})] * 5
        work += [("acme", "braintree", {"decline_code": "5555"})] * 2 + [("acme", "stripe", {})]
        results = pool.classify(work, batch_size=2)  # four batches over both actors
        assert all(result.unknown for result in results)
        assert pool.unknown_counts() == {
            "stripe:decline_code=never_seen_before": 5,
            "braintree:decline_code=5555": 2,
            "stripe:none": 1,
        }
    finally:
        pool.kill()


def test_a_tenant_override_loaded_in_the_driver_applies_inside_the_actors(pool_prefix: str, tmp_path: Path) -> None:
    row = {
        "category": "HARD_DECLINE",
        "reason": "do_not_honor",
        "explanation": "acme never retries do_not_honor",
    }
    path = tmp_path / "acme.json"
    path.write_text(
        json.dumps(
            {
                "tenant": "acme",
                "provider": "stripe",
                "version": 1,
                "rows": {"decline_code": {"do_not_honor": row}},
            }
        )
    )
    pool = ClassifierPool(1, load_tables(overrides=path), prefix=pool_prefix)
    try:
        decline = {"decline_code": "do_not_honor"}
        acme, other = pool.classify([("acme", "stripe", decline), ("globex", "stripe", decline)])
        assert (acme.category, acme.table_id) == (Category.HARD_DECLINE, "stripe+acme.v1")
        assert other.category == Category.SOFT_DECLINE
    finally:
        pool.kill()


def test_a_killed_classifier_is_restarted_and_the_next_batch_still_succeeds(pool_prefix: str) -> None:
    pool = ClassifierPool(1, prefix=pool_prefix)
    try:
        assert len(pool.classify(items(3))) == 3
        ray.kill(pool.handles[0], no_restart=False)
        results = pool.classify(items(3))
        assert [r.category for r in results] == [
            Category.SOFT_DECLINE,
            Category.HARD_DECLINE,
            Category.FRAUD_FLAGGED,
        ]
    finally:
        pool.kill()


async def test_the_async_path_returns_the_same_results(pool_prefix: str) -> None:
    pool = ClassifierPool(2, prefix=pool_prefix)
    try:
        work = items(30)
        assert await pool.classify_async(work, batch_size=7) == pool.classify(work, batch_size=7)
    finally:
        pool.kill()


def test_a_pool_needs_at_least_one_actor(ray_running: None) -> None:
    with pytest.raises(ValueError, match="at least one actor"):
        ClassifierPool(0)


def test_the_actor_class_works_without_ray_and_matches_the_inline_classifier() -> None:
    actor = ClassifierActor()
    work = items(len(SAMPLES))
    run = inline_classifier()
    assert actor.classify_batch(work) == [run(provider, decline) for _, provider, decline in work]
    assert actor.unknown_counts() == {"stripe:decline_code=never_seen_before": 1}
