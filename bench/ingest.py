"""Ingest through `payrisk up --no-dashboard`: saturation with wrk, fixed rates open-loop, then count checks.

Every run uses its own event-id prefix (`evt_<run>_…`), so its rows can be counted alone afterwards:
- every acknowledged new delivery (its `delivery_id` is in the answer) is in PostgreSQL exactly once;
- no event id of the run is stored twice;
- for the open-loop runs, which know the outcome of each request, every 2xx event id is stored exactly once;
- for wrk runs, at most `connections` sent events are missing (the requests in flight when wrk stops).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from bench import bodies, database, loadwrk, openloop, procs


@contextmanager
def gateway(database_url: str, workers: int, data_dir: Path, log: Path, decisions: bool = True) -> Iterator[int]:
    """`payrisk up --no-dashboard` on a free port against the local PostgreSQL and Redis; yields the port.
    `decisions=False`: the same gateway without Ray (`bench.ingest_gateway`): durable ingest alone."""
    port = procs.free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS" and not k.startswith("PAYRISK_")}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=database.REDIS_URL,
        STRIPE_WEBHOOK_SECRET=bodies.SECRET,
        STRIPE_WEBHOOK_TOLERANCE="3600",
        PAYRISK_DATA_DIR=str(data_dir),
        PAYRISK_DASHBOARD_PORT=str(procs.free_port()),
        PAYRISK_LOG_LEVEL="warning",
    )
    argv = [
        procs.PYTHON,
        "-m",
        "payrisk.cli",
        "up",
        "--no-dashboard",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ] if decisions else [procs.PYTHON, "-m", "bench.ingest_gateway", str(port), str(workers)]
    with procs.serving(argv, f"http://127.0.0.1:{port}/readyz", env=env, log=log, timeout=300) as proc:
        yield port if proc else port


def event_ids(lines_path: Path) -> list[str]:
    """The event id of each line (the body starts with `{"id":"evt_…"`)."""
    ids = []
    with lines_path.open("rb") as f:
        for line in f:
            body = line.split(b"\t", 1)[1]
            ids.append(body[7 : body.index(b'"', 7)].decode())
    return ids


def stored(database_url: str, run: str) -> dict[str, list[int]]:
    """event id → delivery ids stored for it, for one run."""
    rows: dict[str, list[int]] = {}
    with psycopg.connect(database_url) as conn:
        cur = conn.execute(
            "SELECT provider_event_id, delivery_id FROM deliveries WHERE provider_event_id LIKE %s",
            (f"evt_{run}\\_%",),
        )
        for event_id, delivery_id in cur:
            rows.setdefault(event_id, []).append(delivery_id)
    return rows


def check_wrk(database_url: str, run: str, lines_path: Path, summary: dict[str, Any]) -> dict[str, Any]:
    ids, rows = event_ids(lines_path), stored(database_url, run)
    by_delivery = {d: e for e, ds in rows.items() for d in ds}
    acked = [int(i) for t in summary["threads"] for i in t["acked"]]
    sent: set[str] = set()
    for t in summary["threads"]:
        for k in range(t["sent"]):
            sent.add(ids[t["tid"] + (k % t["lines"]) * summary["threads_n"]])
    return {
        "acked_new": len(acked),
        "acked_duplicate": sum(t["ok_dup"] for t in summary["threads"]),
        "non_2xx": sum(t["failed"] for t in summary["threads"]),
        "acked_missing": sum(1 for d in acked if d not in by_delivery),
        "acked_twice": len(acked) - len(set(acked)),
        "stored_rows": sum(len(ds) for ds in rows.values()),
        "stored_twice": sum(len(ds) > 1 for ds in rows.values()),
        # answered requests were all 2xx when non_2xx == 0, so only those in flight at the stop may be missing
        "sent_not_stored": sum(1 for e in sent if e not in rows),
        "in_flight_bound": summary["connections"],
    }


def check_open_loop(
    database_url: str, run: str, ids: list[str], result: openloop.OpenLoopResult
) -> dict[str, Any]:
    rows = stored(database_url, run)
    acked = [ids[i] for i, o in enumerate(result.outcomes) if 200 <= o.status < 300]
    return {
        "acked": len(acked),
        "acked_missing": sum(1 for e in acked if e not in rows),
        "non_2xx": sum(1 for o in result.outcomes if not 200 <= o.status < 300),
        "non_2xx_statuses": dict(
            Counter(str(o.status) for o in result.outcomes if not 200 <= o.status < 300)
        ),
        "stored_rows": sum(len(ds) for ds in rows.values()),
        "stored_twice": sum(len(ds) > 1 for ds in rows.values()),
    }


def latency_summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": _pct(ordered, 50) * 1000,
        "p99_ms": _pct(ordered, 99) * 1000,
        "max_ms": ordered[-1] * 1000,
    }


def end_to_end(database_url: str, run: str) -> dict[str, float]:
    """Webhook received → delivery applied by its customer's shard (checkpoint committed), per delivery."""
    with psycopg.connect(database_url) as conn:
        cur = conn.execute(
            "SELECT extract(epoch FROM applied_at - received_at) FROM deliveries"
            " WHERE provider_event_id LIKE %s AND applied_at IS NOT NULL",
            (f"evt_{run}\\_%",),
        )
        values = [float(v) for (v,) in cur]
    return latency_summary(values) if values else {}


def wait_drained(database_url: str, cap_seconds: float) -> dict[str, float]:
    """Let the actors finish the backlog before the next run (so runs do not share CPU with old work)."""
    start = time.monotonic()
    pending = 0
    while time.monotonic() - start < cap_seconds:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM deliveries WHERE status IN ('received', 'dispatched')"
            ).fetchone()
        pending = int(row[0]) if row else 0
        if pending == 0:
            break
        time.sleep(1.0)
    return {"drain_s": time.monotonic() - start, "left_pending": float(pending)}


class IngestBench:
    """All ingest runs against one gateway configuration (worker count)."""

    def __init__(self, database_url: str, port: int, workdir: Path, drain_cap: float, decisions: bool = True) -> None:
        self.database_url, self.port, self.workdir, self.drain_cap = database_url, port, workdir, drain_cap
        self.decisions = decisions  # False: nothing applies the deliveries (no drain to wait for, no end to end)
        self.serial = 0

    def _lines(self, count: int, duplicates: float) -> tuple[str, Path]:
        self.serial += 1
        run = f"b{int(time.time())}{self.serial:03d}"
        path = self.workdir / f"{run}.lines"
        bodies.write(path, run, count, int(time.time()), duplicates, seed=self.serial)
        return run, path

    def saturation(
        self, duplicates: float, seconds: int, threads: int = 2, connections: int = 64
    ) -> dict[str, Any]:
        run, path = self._lines(12_000 * seconds, duplicates)
        summary = loadwrk.run(
            f"http://127.0.0.1:{self.port}", path, threads=threads, connections=connections, seconds=seconds
        )
        check = check_wrk(self.database_url, run, path, summary)
        path.unlink()
        lat = summary["latency_us"]
        return {
            "rps": summary["rps"],
            "p50_ms": lat["p50"] / 1000,
            "p99_ms": lat["p99"] / 1000,
            "max_ms": lat["max"] / 1000,
            "socket_errors": sum(v for k, v in summary["errors"].items() if k != "status"),
            **check,
            **(wait_drained(self.database_url, self.drain_cap) if self.decisions else {}),
        }

    def fixed_rate(self, rate: int, duplicates: float, seconds: int) -> dict[str, Any]:
        run, path = self._lines(rate * seconds, duplicates)
        ids = event_ids(path)
        result = openloop.run("127.0.0.1", self.port, path.read_bytes().splitlines(), rate)
        path.unlink()
        check = check_open_loop(self.database_url, run, ids, result)
        drained = wait_drained(self.database_url, self.drain_cap) if self.decisions else {}
        e2e = end_to_end(self.database_url, run) if self.decisions else {}
        return {
            "rate": rate,
            "achieved_rps": len(result.outcomes) / result.seconds,
            **latency_summary([o.latency_s for o in result.outcomes]),
            "connections": result.connections,
            **check,
            **drained,
            **{f"e2e_{k}": v for k, v in e2e.items()},
        }


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    numeric = [k for k, v in runs[0].items() if isinstance(v, int | float)]
    return {**{k: statistics.median(float(r[k]) for r in runs if k in r) for k in numeric}, "runs": runs}


def measure(
    database_url: str,
    workers: int,
    *,
    repeats: int = 3,
    seconds: int = 15,
    rates: tuple[int, ...] = (500, 1000, 2000),
    drain_cap: float = 60.0,
    log_dir: Path | None = None,
    decisions: bool = True,
) -> dict[str, Any]:
    """Saturation (unique, 20 % duplicates) and fixed-rate runs, `repeats` each, medians. `decisions=False`:
    the gateway without Ray (durable ingest alone)."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="payrisk-ingest-") as tmp:
        log = (log_dir or Path(tmp)) / f"gateway-{workers}w.log"
        with gateway(database_url, workers, Path(tmp) / "data", log, decisions) as port:
            bench = IngestBench(database_url, port, Path(tmp), drain_cap, decisions)
            bench.fixed_rate(200, 0.0, 3)  # warm-up: connections, shard activation, caches
            for label, dup in (("unique", 0.0), ("dup20", 0.2)):
                results[f"saturation_{label}"] = medians(
                    [bench.saturation(dup, seconds) for _ in range(repeats)]
                )
                _say(workers, f"saturation {label}", results[f"saturation_{label}"])
            for rate in rates:
                results[f"rate_{rate}"] = medians(
                    [bench.fixed_rate(rate, 0.0, seconds) for _ in range(repeats)]
                )
                _say(workers, f"{rate} req/s", results[f"rate_{rate}"])
            results["rate_1000_dup20"] = medians(
                [bench.fixed_rate(1000, 0.2, seconds) for _ in range(repeats)]
            )
            _say(workers, "1000 req/s dup20", results["rate_1000_dup20"])
    return results


def _say(workers: int, label: str, r: dict[str, Any]) -> None:
    rps = r.get("rps", r.get("achieved_rps", 0.0))
    print(
        f"  gateway {workers}w {label}: {rps:,.0f} req/s p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms"
        f" max {r['max_ms']:.0f} ms; acked missing {r['acked_missing']:.0f}, stored twice"
        f" {r['stored_twice']:.0f}",
        flush=True,
    )


def _pct(ordered: list[float], pct: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))] if ordered else float("nan")
