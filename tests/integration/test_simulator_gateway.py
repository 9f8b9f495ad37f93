"""The simulator's webhooks into the real gateway (real PostgreSQL and Redis): verified, stored once, parsed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from gateway.app import create_app
from settings import load_settings
from simulator.core import SimulatorSettings
from simulator.faults import Faults
from simulator.server import SimulatorServer
from tests.support.servers import ServerThread

SECRET = "whsec_simulator_to_gateway"


@pytest.fixture(scope="module")
def gateway(database_url: str, redis_url: str) -> Iterator[str]:
    settings = load_settings(
        environ={},
        dotenv=None,
        database_url=database_url,
        redis_url=redis_url,
        stripe_webhook_secrets=(SECRET,),
        sweep_interval_seconds=3600,
    )
    with ServerThread(create_app(settings)) as server:
        yield server.url


def stored(database_url: str, event_ids: list[str]) -> dict[str, tuple[int, set[str]]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT provider_event_id, count(*), array_agg(status) FROM deliveries "
            "WHERE provider_event_id = ANY(%s) GROUP BY provider_event_id",
            (event_ids,),
        ).fetchall()
    return {row[0]: (int(row[1]), set(row[2])) for row in rows}


@pytest.mark.parametrize("api_version", ["2024-06-20", "2026-10-28.endive"])
def test_a_month_of_renewals_with_duplicates_reaches_the_gateway_once_each_and_parses(
    gateway: str, database_url: str, api_version: str
) -> None:
    settings = SimulatorSettings(
        seed=21,
        id_namespace=uuid.uuid4().hex,  # Redis outlives the test database: reused event ids would look seen
        customers=15,
        webhook_url=f"{gateway}/webhooks/stripe",
        webhook_secret=SECRET,
        api_version=api_version,
        auto_deliver=False,
        model="always_decline:insufficient_funds",
        faults=Faults(webhook_duplicate_rate=0.5, webhook_reorder_window=6),
    )
    with SimulatorServer(settings) as server:
        server.sim.advance(server.sim.now() + timedelta(days=31))
        server.flush()
        accepted = [d for d in server.sim.outbox.deliveries if d.status == 200]
    event_ids = [e["id"] for e in server.sim.events]
    rows = stored(database_url, event_ids)
    assert len(accepted) > len(event_ids)  # some events went twice
    assert set(rows) == set(event_ids)
    assert all(n == 1 and "quarantined" not in statuses for n, statuses in rows.values())
    failures = [e["id"] for e in server.sim.events if e["type"] == "invoice.payment_failed"]
    assert failures and all("ignored" not in rows[event_id][1] for event_id in failures)
