"""Run in a subprocess by test_cluster_failover.py: several Ray nodes on this machine; the node hosting a shard
is removed mid-run; the shard comes back on another node and no delivery is lost or applied twice.

Prints one JSON line with the measured facts; the test asserts on them.
"""

from __future__ import annotations

import json
import sys
import time
import uuid

import httpx
import psycopg
import ray
from ray.cluster_utils import Cluster

from actors.placement import shard_index
from actors.system import ActorSystem
from gateway.app import create_app
from settings import load_settings
from tests.support.servers import ServerThread
from tests.support.stripe_events import SECRET, envelope, invoice, sign


def main(database_url: str, redis_url: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False,
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3}})
    nodes = [cluster.add_node(num_cpus=1, resources={"shard_slot": 4}, node_ip_address="127.0.0.1")
             for _ in range(2)]
    # ray.init(address=...) rewrites 127.0.0.1 to the machine's interface address, but this cluster listens on
    # loopback only (the machine's rule for local servers): keep the address as given.
    ray._private.services.resolve_ip_for_localhost = lambda host: host
    ray.init(address=cluster.address, namespace="payrisk", log_to_driver=False, _node_ip_address="127.0.0.1")
    settings = load_settings(environ={}, dotenv=None, database_url=database_url, redis_url=redis_url,
                             stripe_webhook_secrets=(SECRET,), shards=2, sweep_interval_seconds=1.0,
                             sweep_grace_seconds=2.0)
    system = ActorSystem(settings, planner="default", shard_resources={"shard_slot": 1})
    system.start(run_loops=False)
    tag = uuid.uuid4().hex[:6]
    customers = [f"cus_{tag}_{i}" for i in range(40)]
    victim_index = shard_index("default", customers[0], 2)
    node_before = ray.get(system.shards[victim_index].node.remote())
    with ServerThread(create_app(settings)) as gateway:
        for c in customers[:20]:
            post(gateway.url, c, 1)
        victim = next(n for n in nodes if n.node_id == node_before)
        cluster.remove_node(victim, allow_graceful=False)
        for c in customers:
            post(gateway.url, c, 2)
        applied = wait_all_applied(database_url, tag, expected=60, timeout=120)
        node_after = ray.get(system.shards[victim_index].node.remote(), timeout=60)
    with psycopg.connect(database_url) as conn:
        failed = conn.execute("SELECT stream_id, count(*) FROM events WHERE stream_id LIKE %s"
                              " AND event_type = 'PaymentFailed' GROUP BY stream_id", (f"cus_{tag}_%",)).fetchall()
    print(json.dumps({"applied": applied, "node_before": node_before, "node_after": node_after,
                      "failures_per_customer": {s: n for s, n in failed}}))
    system.stop()
    ray.shutdown()
    cluster.shutdown()


def post(url: str, customer: str, n: int) -> None:
    body = envelope(f"evt_{customer}_{n}", "invoice.payment_failed", invoice(f"in_{customer}_{n}", customer, pi=None))
    for _ in range(50):
        response = httpx.post(url + "/webhooks/stripe", content=body, headers={"stripe-signature": sign(body)},
                              timeout=10)
        if response.status_code == 200:
            return
        time.sleep(0.2)
    raise RuntimeError(f"delivery for {customer} not acknowledged")


def wait_all_applied(database_url: str, tag: str, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    applied = 0
    while time.monotonic() < deadline:
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT count(*) FROM deliveries WHERE customer_id LIKE %s AND status = 'applied'",
                               (f"cus_{tag}_%",)).fetchone()
        applied = int(row[0]) if row else 0
        if applied >= expected:
            break
        time.sleep(0.5)
    return applied


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
