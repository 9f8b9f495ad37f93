"""Decisions per second: stored deliveries handed straight to the customer shards, as the gateway's dispatcher does.

    .venv/bin/python -m bench.decisions --deliveries 20000 --shards 2            # one node
    .venv/bin/python -m bench.decisions --deliveries 20000 --shards 2 4 6 --nodes 1 2 3

A fresh database migrated by the real runner; `--deliveries` signed `invoice.payment_failed` bodies (~2 KB, over
`--customers` customers, one invoice each) stored as `received`, then handed to the shards in batches of
`--batch` with `--inflight` batches in flight per shard (the dispatcher's micro-batches). Throughput =
applied deliveries ÷ wall time (after `--warmup` more, untimed); every delivery must end `applied` exactly once
(the count check); `--profile` samples the shards with py-spy meanwhile. With
`--nodes N` the shards run on a `ray.cluster_utils.Cluster` of N nodes on this machine, placed round robin by a
custom resource per node. Afterwards pgbench replays the same statements (one transaction per batch, with the
run's own JSON) as the PostgreSQL ceiling for the ratio. Ray runs on 127.0.0.1 in its own temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from bench import bodies, database
from bench.decision_ceiling import pgbench_decisions
from bench.profile import py_spy, summarize


def store_deliveries(url: str, run: str, count: int, customers: int) -> list[dict[str, Any]]:
    """Insert `count` received deliveries; the hand-off items, as the gateway would build them."""
    from gateway.redispatch import normalize_stored
    from store import Database, deliveries
    from store.deliveries import DeliveryStatus, NewDelivery

    created = int(time.time())
    made = []
    for n in range(count):
        customer = f"cus_{run}_{n % customers}"
        body = bodies.event_body(f"evt_{run}_{n}", customer, f"in_{run}_{n}", created)
        _, events = normalize_stored("stripe", body)
        made.append((NewDelivery("default", "stripe", f"evt_{run}_{n}", "invoice.payment_failed", customer, body,
                                 {}, DeliveryStatus.RECEIVED, None), events))

    async def insert() -> list[int | None]:
        db = Database(url, max_size=2)
        await db.open()
        try:
            ids: list[int | None] = []
            for start in range(0, len(made), 1000):
                ids += await deliveries.insert_many(db, [d for d, _ in made[start:start + 1000]])
            return ids
        finally:
            await db.close()

    ids = asyncio.run(insert())
    return [{"tenant_id": "default", "delivery_id": i, "customer_id": d.customer_id, "events": e}
            for i, (d, e) in zip(ids, made, strict=True)]


@contextmanager
def ray_nodes(nodes: int) -> Iterator[list[str]]:
    """A local Ray of `nodes` nodes on 127.0.0.1 (its own temp dir); yields each node's resource name."""
    import ray

    names = [f"bench_node_{i}" for i in range(nodes)]
    temp = tempfile.mkdtemp(prefix="ray-bench-", dir="/tmp")
    if nodes == 1:
        ray.init(num_cpus=2, resources={names[0]: 100}, include_dashboard=False, _temp_dir=temp,
                 _node_ip_address="127.0.0.1", log_to_driver=False)
        try:
            yield names
        finally:
            ray.shutdown()
        return
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "resources": {names[0]: 100}, "include_dashboard": False, "temp_dir": temp,
        "node_ip_address": "127.0.0.1"})
    for name in names[1:]:
        cluster.add_node(num_cpus=2, resources={name: 100}, node_ip_address="127.0.0.1")
    # ray.init(address=…) would rewrite 127.0.0.1 to the machine's address; this cluster listens on loopback only
    ray._private.services.resolve_ip_for_localhost = lambda host: host
    ray.init(address=cluster.address, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        yield names
    finally:
        ray.shutdown()
        cluster.shutdown()


def start_shards(url: str, count: int, nodes: list[str]) -> list[Any]:
    import ray

    from actors.placement import NAMESPACE
    from actors.shard import CustomerShard
    from actors.system import actor_config
    from settings import load_settings

    settings = load_settings(environ={}, dotenv=None, database_url=url)
    config = actor_config(settings, log_level="warning", shards=count)
    shards = [CustomerShard.options(name=f"bench-shard-{i}", namespace=NAMESPACE,
                                    resources={nodes[i % len(nodes)]: 1}).remote(i, config) for i in range(count)]
    ray.get([s.stats.remote() for s in shards])
    return shards


async def drive(shards: list[Any], items: list[dict[str, Any]], batch: int, inflight: int) -> list[float]:
    """Hand every item to its shard (crc32 placement), `inflight` batches in flight per shard; batch latencies."""
    from actors.placement import shard_index

    queues: list[list[dict[str, Any]]] = [[] for _ in shards]
    for item in items:
        queues[shard_index(item["tenant_id"], item["customer_id"], len(shards))].append(item)
    latencies: list[float] = []

    async def worker(shard: Any, queue: list[dict[str, Any]]) -> None:
        while queue:
            chunk, queue[:] = queue[:batch], queue[batch:]
            started = time.perf_counter()
            outcomes = await shard.apply_deliveries.options(enable_task_events=False).remote(chunk)
            latencies.append(time.perf_counter() - started)
            assert all(o == "applied" for o in outcomes), outcomes[:3]

    await asyncio.gather(*(worker(s, q) for s, q in zip(shards, queues, strict=True) for _ in range(inflight)))
    return latencies


@contextmanager
def profiling(shards: list[Any], out: Path | None) -> Iterator[None]:
    """py-spy (100 Hz, raw collapsed stacks) on every shard process while the block runs; one file per shard."""
    if out is None:
        yield
        return
    import ray

    pids = ray.get([s.__ray_call__.remote(lambda _self: os.getpid()) for s in shards])
    out.parent.mkdir(parents=True, exist_ok=True)
    spies = [subprocess.Popen([py_spy(), "record", "--pid", str(pid), "--rate", "100", "--format", "raw",
                               "--nonblocking", "--output", f"{out}.{i}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for i, pid in enumerate(pids)]
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            spy.wait(timeout=60)
        with out.open("w") as merged:
            for i in range(len(pids)):
                part = Path(f"{out}.{i}")
                merged.write(part.read_text())
                part.unlink()
        out.with_suffix(".txt").write_text(summarize(out))


def count_check(url: str, run: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'applied'), count(*) FILTER (WHERE status <> 'applied'),"
            " (SELECT count(*) FROM events WHERE stream_id LIKE %s AND event_type = 'PaymentFailed')"
            " FROM deliveries WHERE provider_event_id LIKE %s", (f"cus_{run}%", f"evt_{run}%")).fetchone()
    assert row is not None
    return {"applied": row[0], "not_applied": row[1], "failures_recorded": row[2]}


def run_once(url: str, deliveries: int, customers: int, shards: int, nodes: int, batch: int, inflight: int,
             warmup: int = 500, profile: Path | None = None) -> dict[str, Any]:
    import ray

    run = uuid.uuid4().hex[:6]
    items = store_deliveries(url, run, deliveries + warmup, customers + warmup)
    with ray_nodes(nodes) as names:
        handles = start_shards(url, shards, names)
        asyncio.run(drive(handles, items[:warmup], batch, inflight))  # tables loaded, connections open
        with profiling(handles, profile):
            started = time.perf_counter()
            latencies = asyncio.run(drive(handles, items[warmup:], batch, inflight))
            wall = time.perf_counter() - started
        placed = ray.get([h.node.remote() for h in handles])
        for handle in handles:
            ray.kill(handle, no_restart=True)
    latencies.sort()
    return {"nodes": nodes, "shards": shards, "nodes_used": len(set(placed)), "deliveries": deliveries,
            "seconds": round(wall, 2), "per_second": round(deliveries / wall),
            "batch_p50_ms": round(statistics.median(latencies) * 1000, 1),
            "batch_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1), **count_check(url, run)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--shards", type=int, nargs="+", default=[2])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--inflight", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=500, help="deliveries applied before the clock starts")
    parser.add_argument("--profile", type=Path, help="write the shards' py-spy collapsed stacks here (+ .txt)")
    parser.add_argument("--ceiling-seconds", type=int, default=10, help="pgbench run length; 0 skips it")
    parser.add_argument("--worker-niceness", type=int, default=0,
                        help="nice value of the Ray workers (payrisk's default 0; Ray's own default is 15)")
    args = parser.parse_args()
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # read by the raylets this process starts (Ray's own spelling: RAY_<config name>)
    os.environ["RAY_worker_niceness"] = str(args.worker_niceness)  # noqa: SIM112
    print(f"Ray worker niceness: {args.worker_niceness}", flush=True)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    print("| nodes | shards | deliveries | seconds | decisions/s | batch p50 / p99 | applied; not applied |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    with database.fresh_database(f"payrisk_decisions_{uuid.uuid4().hex[:6]}") as url:
        from store.migrate import apply_migrations

        apply_migrations(url)
        for nodes in args.nodes:
            for shards in args.shards:
                r = run_once(url, args.deliveries, args.customers, shards, nodes, args.batch, args.inflight,
                             args.warmup, args.profile)
                print(f"| {nodes} ({r['nodes_used']} used) | {shards} | {r['deliveries']:,} | {r['seconds']} "
                      f"| {r['per_second']:,} | {r['batch_p50_ms']} / {r['batch_p99_ms']} ms "
                      f"| {r['applied']:,}; {r['not_applied']:,} |", flush=True)
        if args.ceiling_seconds:
            ceiling = pgbench_decisions(url, args.batch, args.ceiling_seconds)
            print(f"\nPostgreSQL ceiling (pgbench, the same statements, {args.batch} decisions per transaction, "
                  f"{ceiling['clients']} clients): {ceiling['decisions_per_second']:,} decisions/s")
    print(f"load average at end: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
