"""The platform's state as the gauges show it: open cases and revenue at risk (the `case_facts` read model,
partial index of migration 0030), the delivery backlog, overdue timers and the outbox. Read-only, a handful of
indexed queries; the caller says which case states are open and which lost (the pure core owns those)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from psycopg.rows import tuple_row

from store.db import Database


@dataclass(frozen=True, slots=True)
class Readings:
    open_cases: list[tuple[str, str, int, float]]  # tenant, currency, open cases, amount due
    active_customers: list[tuple[str, int]]  # tenant, customers with an open case
    closed: list[tuple[str, str, int, float, int]]  # tenant, currency, recovered cases, recovered amount, lost
    backlog: list[tuple[str, int, float | None]]  # status, count, oldest age (s)
    timers_due: tuple[int, float]  # due and unfired, the most overdue (s)
    outbox_depth: list[tuple[str, int]]  # topic, unsent
    outbox_dead: int


def _states(states: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Literal(s) for s in states)  # literals: the partial index's predicate


async def read(db: Database, open_states: Sequence[str], lost_states: Sequence[str]) -> Readings:
    open_in = sql.SQL("state IN ({})").format(_states(open_states))
    queries: list[Any] = [
        sql.SQL("SELECT tenant_id, currency, count(*), coalesce(sum(amount_due), 0) FROM case_facts WHERE {}"
                " GROUP BY 1, 2").format(open_in),
        sql.SQL("SELECT tenant_id, count(DISTINCT customer_id) FROM case_facts WHERE {} GROUP BY 1").format(open_in),
        sql.SQL("SELECT tenant_id, currency, count(*) FILTER (WHERE state = 'recovered'),"
                " coalesce(sum(recovered_amount) FILTER (WHERE state = 'recovered'), 0),"
                " count(*) FILTER (WHERE state IN ({})) FROM case_facts GROUP BY 1, 2").format(_states(lost_states)),
        "SELECT status, count(*), extract(epoch FROM now() - min(received_at)) FROM deliveries"
        " WHERE status IN ('received', 'dispatched') GROUP BY status",
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(due_at)), 0) FROM timers"
        " WHERE fired_at IS NULL AND cancelled_at IS NULL AND due_at <= now()",
        "SELECT topic, count(*) FROM outbox WHERE sent_at IS NULL AND dead_at IS NULL GROUP BY topic",
        "SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL",
    ]
    results: list[list[Any]] = []
    async with db.connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
        for query in queries:
            results.append(await (await cur.execute(query)).fetchall())
    timers, dead = results[4][0], results[6][0]
    return Readings(open_cases=results[0], active_customers=results[1], closed=results[2], backlog=results[3],
                    timers_due=(int(timers[0]), float(timers[1])), outbox_depth=results[5], outbox_dead=int(dead[0]))
