"""PostgreSQL's own ceiling for decisions: pgbench replaying the rows a decision batch writes, without Python.

The rows are the run's own: the events of one applied customer (types and JSON), its checkpoint and timers, and the
per-delivery row counts of every table measured over the run. One pgbench transaction writes `batch` new customers
the way the shard's batch does (one multi-row statement per table, the delivery status folded into one UPDATE).
JSON literals go in hex so that pgbench never reads `:word` inside them as a variable.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import orjson
import psycopg

from bench.ceilings import pgbench_binary
from bench.database import PG_HOST, PG_USER

_TPS = re.compile(r"tps = ([\d.]+) \(without initial connection time\)")


def _json(value: Any) -> str:
    return f"convert_from(decode('{orjson.dumps(value).hex()}', 'hex'), 'UTF8')::jsonb"


def sample(url: str) -> dict[str, Any]:
    """One applied customer's rows, and the run's rows per applied delivery."""
    with psycopg.connect(url) as conn:
        stream = conn.execute("SELECT stream_id FROM checkpoints ORDER BY stream_id LIMIT 1").fetchone()
        assert stream is not None, "no decision was written"
        evs = conn.execute("SELECT event_type, payload FROM events WHERE stream_id = %s ORDER BY version",
                           stream).fetchall()
        state = conn.execute("SELECT state FROM checkpoints WHERE stream_id = %s", stream).fetchone()
        tms = conn.execute("SELECT timer_key, payload FROM timers WHERE stream_id = %s", stream).fetchall()
        applied, outbox, attempts = conn.execute(
            "SELECT (SELECT count(*) FROM deliveries WHERE status = 'applied'), (SELECT count(*) FROM outbox),"
            " (SELECT count(*) FROM attempts)").fetchone() or (1, 0, 0)
    return {"events": evs, "state": state[0] if state else {}, "timers": tms,
            "outbox_per": outbox / max(applied, 1), "attempts_per": attempts / max(applied, 1)}


def script(rows: dict[str, Any], batch: int) -> str:
    stream = "'pg' || :id || '_' || g"
    events = ", ".join(f"({v}, '{t}', {_json(p)})" for v, (t, p) in enumerate(rows["events"], start=1))
    parts = [
        "\\set id random(1, 1000000000000)",
        "\\set first random(1, 10000)",
        "BEGIN;",
        f"INSERT INTO events (tenant_id, stream_id, version, event_type, schema_version, payload) SELECT 'default',"
        f" {stream}, v.version, v.event_type, 1, v.payload FROM generate_series(1, {batch}) g,"
        f" (VALUES {events}) v(version, event_type, payload);",
        f"INSERT INTO checkpoints (tenant_id, stream_id, version, state, updated_at) SELECT 'default', {stream},"
        f" {len(rows['events'])}, {_json(rows['state'])}, now() FROM generate_series(1, {batch}) g"
        " ON CONFLICT (tenant_id, stream_id) DO UPDATE SET version = excluded.version, state = excluded.state;",
    ]
    if rows["timers"]:
        timers = ", ".join(f"('{k}', {_json(p)})" for k, p in rows["timers"])
        parts.append(f"INSERT INTO timers (tenant_id, stream_id, timer_key, due_at, payload) SELECT 'default',"
                     f" {stream}, t.k, now() + interval '1 hour', t.p FROM generate_series(1, {batch}) g,"
                     f" (VALUES {timers}) t(k, p);")
    parts += [
        f"UPDATE deliveries SET status = 'applied', applied_at = now() WHERE delivery_id BETWEEN :first"
        f" AND :first + {batch - 1};",
        "END;",
    ]
    return "\n".join(parts) + "\n"


def pgbench_decisions(url: str, batch: int, seconds: int, clients: int = 2) -> dict[str, Any]:
    """Decisions per second PostgreSQL itself sustains with these statements (`clients` like the shards)."""
    rows = sample(url)
    dbname = url.rsplit("/", 1)[1]
    with tempfile.TemporaryDirectory(prefix="payrisk-pgbench-") as tmp:
        path = Path(tmp) / "decisions.sql"
        path.write_text(script(rows, batch))
        out = subprocess.run([pgbench_binary(), "-h", PG_HOST, "-U", PG_USER, "-n", "-T", str(seconds),
                              "-c", str(clients), "-j", str(clients), "-f", str(path), dbname],
                             check=True, capture_output=True, text=True, timeout=seconds + 60).stdout
    tps = float(_TPS.search(out).group(1))  # type: ignore[union-attr]
    return {"clients": clients, "batch": batch, "transactions_per_second": round(tps, 1),
            "decisions_per_second": round(tps * batch), "events_per_decision": len(rows["events"]),
            "timers_per_decision": len(rows["timers"]), "outbox_per_decision": round(rows["outbox_per"], 2),
            "attempts_per_decision": round(rows["attempts_per"], 2)}
