"""The analytics read model: cases (the `case_facts` rows, migration 0010) and the daily rollups (migration 0040)
behind `/api/cases`, `/api/analytics/*` and the dashboard's pages. Rows only — the metric definitions and the
shaping into figures live in `actors.domain.analytics`; every query is bound to one tenant (invariant I8).
`args` always carry `tenant`, `start`, `end`, `open` and `lost` (the core's open and lost case states)."""

from __future__ import annotations

from typing import Any

from store.db import Database

#: the breakdown columns of `case_facts` and of the rollups (the core's `analytics.DIMENSIONS` names the same)
DIMENSIONS = ("category", "reason", "segment", "strategy", "provider", "recovered_by")

# One row per invoice case of the tenant's customers: the `case_facts` read model (migration 0010), which a trigger
# keeps in step with each checkpoint in the same transaction; its provider is the case's own, the stream's, or the
# provider of the delivery that first failed it.
CASES_CTE = """
WITH cases AS (
  SELECT customer_id, invoice_id, state, amount_due, currency, attempts_made, max_attempts, category, reason,
         segment, strategy_id, strategy_version, strategy, provider, recovered_amount, recovered_by,
         first_failed_at, last_failed_at, recovered_at, closed_reason, next_action, explanation
  FROM case_facts
  WHERE tenant_id = %(tenant)s
    AND (%(start)s::timestamptz IS NULL OR first_failed_at >= %(start)s)
    AND (%(end)s::timestamptz IS NULL OR first_failed_at < %(end)s)
)
"""

# The window [start, end) in UTC as the rollups read it: the whole days it covers, [day_from, day_to), from the daily
# rollups; the partial days at its edges, [start, head_to) and [tail_from, end) (empty when it starts or ends at
# midnight), case by case. An open end is an infinite day.
WINDOW_CTE = """
WITH w AS (
  SELECT s, e, day_from, day_to, least(day_from::timestamp AT TIME ZONE 'UTC', e) AS head_to,
         greatest(day_to::timestamp AT TIME ZONE 'UTC', day_from::timestamp AT TIME ZONE 'UTC') AS tail_from
  FROM (SELECT %(start)s::timestamptz AS s, %(end)s::timestamptz AS e,
               coalesce(((%(start)s::timestamptz AT TIME ZONE 'UTC') + interval '1 day' - interval '1 microsecond')
                        ::date, '-infinity') AS day_from,
               coalesce((%(end)s::timestamptz AT TIME ZONE 'UTC')::date, 'infinity') AS day_to) bounds
),
"""

# The window's cases as groups for the sums: whole days from the `case_daily` rollup (migration 0040), plus this
# transaction's own changes not yet folded in (`case_daily_deltas` under its id: none for a read-only one); the edges
# case by case from `case_facts`. Both sides split a case into groups by the same `case_daily_keys`. A window of
# dates reads a few rows per day and breakdown value, whatever the number of cases.
GROUPS_CTE = """
groups AS (
  SELECT day, currency, state, dimension, key, cases, amount_due, recovered_amount, attempts_made
  FROM case_daily, w WHERE tenant_id = %(tenant)s AND day >= w.day_from AND day < w.day_to AND cases <> 0
  UNION ALL
  SELECT d.day, d.currency, d.state, k.dimension, k.key, d.sign, d.sign * d.amount_due, d.sign * d.recovered_amount,
         d.sign * d.attempts_made
  FROM w, case_daily_deltas d
       CROSS JOIN LATERAL case_daily_keys(d.category, d.reason, d.segment, d.strategy, d.provider, d.recovered_by) k
  WHERE d.xid = pg_current_xact_id_if_assigned() AND d.tenant_id = %(tenant)s AND d.day >= w.day_from
    AND d.day < w.day_to
  UNION ALL
  SELECT (f.first_failed_at AT TIME ZONE 'UTC')::date, f.currency, f.state, k.dimension, k.key, 1, f.amount_due,
         f.recovered_amount, f.attempts_made
  FROM w, case_facts f
       CROSS JOIN LATERAL case_daily_keys(f.category, f.reason, f.segment, f.strategy, f.provider, f.recovered_by) k
  WHERE f.tenant_id = %(tenant)s AND ((f.first_failed_at >= w.s AND f.first_failed_at < w.head_to)
                                      OR (f.first_failed_at >= w.tail_from AND f.first_failed_at < w.e))
),
"""

# Time to recover does not add up over days, so it is exact, over the window's recovered cases only (an index-only
# range scan of `case_facts_recovered`): the same figure as before the rollups, from a fraction of the rows.
RECOVERED_CTE = """
recovered AS (
  SELECT (first_failed_at AT TIME ZONE 'UTC')::date AS day, currency, category, reason, segment, strategy, provider,
         recovered_by, extract(epoch FROM recovered_at - first_failed_at) AS seconds
  FROM case_facts, w
  WHERE tenant_id = %(tenant)s AND state = 'recovered' AND recovered_at IS NOT NULL
    AND first_failed_at >= coalesce(w.s, '-infinity') AND first_failed_at < coalesce(w.e, 'infinity')
)
"""

SUMS = """
  sum(cases) AS cases, sum(amount_due) AS failed_amount,
  sum(cases) FILTER (WHERE state = ANY(%(open)s)) AS open_cases,
  sum(amount_due) FILTER (WHERE state = ANY(%(open)s)) AS revenue_at_risk,
  sum(cases) FILTER (WHERE state = 'recovered') AS recovered_cases,
  sum(recovered_amount) FILTER (WHERE state = 'recovered') AS recovered_revenue,
  sum(cases) FILTER (WHERE state = ANY(%(lost)s)) AS lost_cases,
  sum(amount_due) FILTER (WHERE state = ANY(%(lost)s)) AS lost_amount,
  sum(attempts_made) AS retries
"""

TIMES = """
  percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS ttr_median,
  percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) AS ttr_p90
"""

SUMMARY_SQL = (WINDOW_CTE + GROUPS_CTE + RECOVERED_CTE + "SELECT s.*, t.ttr_median, t.ttr_p90 FROM (SELECT currency,"
               + " dimension, key," + SUMS + " FROM groups GROUP BY currency, dimension, key HAVING sum(cases) <> 0) s"
               + " LEFT JOIN (SELECT currency, CASE"
               + "".join(f" WHEN grouping({d}) = 0 THEN '{d}'" for d in DIMENSIONS)
               + " ELSE 'total' END AS dimension, coalesce(" + ", ".join(DIMENSIONS) + ", '') AS key,"
               + TIMES + " FROM recovered GROUP BY GROUPING SETS ((currency), "
               + ", ".join(f"(currency, {d})" for d in DIMENSIONS) + ")) t"
               + " ON t.currency = s.currency AND t.dimension = s.dimension AND t.key = s.key")  # fmt: skip

DAILY_COHORT_SQL = (WINDOW_CTE + GROUPS_CTE + RECOVERED_CTE + "SELECT s.*, t.ttr_median, t.ttr_p90 FROM (SELECT day,"
                    + " currency," + SUMS + " FROM groups WHERE dimension = 'total' GROUP BY day, currency"
                    + " HAVING sum(cases) <> 0) s"
                    + " LEFT JOIN (SELECT day, currency," + TIMES + " FROM recovered GROUP BY day, currency) t"
                    + " ON t.day = s.day AND t.currency = s.currency ORDER BY s.day, s.currency")  # fmt: skip

# Whole days from the `activity_daily` rollup (migration 0040) and this transaction's deltas; the partial days at the
# edges from the event log itself (read only when the window has such an edge).
DAILY_ACTIVITY_SQL = WINDOW_CTE + """
activity AS (
  SELECT day, currency, failures, failed_amount, recoveries, recovered_amount
  FROM activity_daily, w WHERE tenant_id = %(tenant)s AND day >= w.day_from AND day < w.day_to
  UNION ALL
  SELECT day, currency, failures, failed_amount, recoveries, recovered_amount
  FROM activity_daily_deltas, w WHERE xid = pg_current_xact_id_if_assigned() AND tenant_id = %(tenant)s
    AND day >= w.day_from AND day < w.day_to
  UNION ALL
  SELECT (e.at AT TIME ZONE 'UTC')::date, e.currency, (e.event_type = 'PaymentFailed')::int,
         CASE WHEN e.event_type = 'PaymentFailed' THEN (e.payload->>'amount_due')::bigint END,
         (e.event_type = 'InvoiceRecovered')::int,
         CASE WHEN e.event_type = 'InvoiceRecovered' THEN (e.payload->>'amount')::bigint END
  FROM w, LATERAL (SELECT event_type, payload, (payload->>'at')::timestamptz AS at,
                          coalesce(payload->>'currency', 'unknown') AS currency
                   FROM events
                   WHERE (w.s < w.head_to OR w.tail_from < w.e) AND tenant_id = %(tenant)s
                     AND event_type IN ('PaymentFailed', 'InvoiceRecovered') AND payload->>'at' IS NOT NULL) e
  WHERE (e.at >= w.s AND e.at < w.head_to) OR (e.at >= w.tail_from AND e.at < w.e)
)
SELECT day, currency, sum(failures) AS failures, sum(failed_amount) AS failed_amount, sum(recoveries) AS recoveries,
       sum(recovered_amount) AS recovered_amount
FROM activity GROUP BY day, currency HAVING sum(failures) <> 0 OR sum(recoveries) <> 0 ORDER BY day, currency
"""

CASES_SQL = (
    CASES_CTE
    + """
SELECT * FROM cases
WHERE (%(state)s::text IS NULL OR state = %(state)s)
  AND (%(category)s::text IS NULL OR category = %(category)s)
  AND (%(reason)s::text IS NULL OR reason = %(reason)s)
  AND (%(segment)s::text IS NULL OR segment = %(segment)s)
  AND (%(strategy)s::text IS NULL OR strategy_id = %(strategy)s OR strategy = %(strategy)s)
  AND (%(provider)s::text IS NULL OR provider = %(provider)s)
  AND (%(customer)s::text IS NULL OR customer_id = %(customer)s)
  AND (%(amount_min)s::bigint IS NULL OR amount_due >= %(amount_min)s)
  AND (%(amount_max)s::bigint IS NULL OR amount_due <= %(amount_max)s)
  AND (%(after_at)s::timestamptz IS NULL OR (first_failed_at, customer_id, invoice_id)
       > (%(after_at)s::timestamptz, %(after_customer)s, %(after_invoice)s))
ORDER BY first_failed_at, customer_id, invoice_id
LIMIT %(limit)s
"""
)


async def _query(db: Database, sql: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        cur = await conn.execute(sql, args)
        rows: list[dict[str, Any]] = await cur.fetchall()
    return rows


async def summary_rows(db: Database, args: dict[str, Any]) -> list[dict[str, Any]]:
    """Per currency and per breakdown (grouping sets) over the window."""
    return await _query(db, SUMMARY_SQL, args)


async def daily_rows(db: Database, args: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(per day of first failure, per event day) over the window."""
    return await _query(db, DAILY_COHORT_SQL, args), await _query(db, DAILY_ACTIVITY_SQL, args)


async def case_rows(db: Database, args: dict[str, Any]) -> list[dict[str, Any]]:
    """One keyset page of cases (`limit`, the filters and the `after_*` cursor in `args`)."""
    return await _query(db, CASES_SQL, args)


ARM_SUMS_SQL = """
SELECT currency, CASE WHEN segment = 'holdout' THEN 'holdout' ELSE 'treatment' END AS arm, count(*) AS n,
       sum(amount_due)::float8 AS sx, sum(coalesce(recovered_amount, 0))::float8 AS sy,
       sum(amount_due::float8 * amount_due)::float8 AS sxx,
       sum(amount_due::float8 * coalesce(recovered_amount, 0))::float8 AS sxy,
       sum(coalesce(recovered_amount, 0)::float8 * coalesce(recovered_amount, 0))::float8 AS syy
FROM case_facts
WHERE tenant_id = %(tenant)s AND segment IS NOT NULL AND amount_due > 0
  AND (%(start)s::timestamptz IS NULL OR first_failed_at >= %(start)s)
  AND (%(end)s::timestamptz IS NULL OR first_failed_at < %(end)s)
GROUP BY 1, 2
"""


async def arm_sums(db: Database, args: dict[str, Any]) -> list[dict[str, Any]]:
    """Per currency and arm (`holdout`: cases planned by the holdout baseline, else `treatment`), the sums an
    uplift and its interval need: n, Σx, Σy, Σx², Σxy, Σy² (x = amount due, y = recovered)."""
    return await _query(db, ARM_SUMS_SQL, args)
