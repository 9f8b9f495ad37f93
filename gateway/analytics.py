"""Cases and recovery analytics over the event store: `/api/cases`, `/api/analytics/summary`, `/daily`.

Every query is bound to one tenant (invariant I8). The metric definitions live in `actors.domain.analytics`;
this module only turns parameters into SQL and rows into JSON.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from actors.domain import analytics as a
from gateway.jsonbody import dumps
from gateway.problems import ProblemError

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

AGGREGATES = """
  count(*) AS cases, sum(amount_due) AS failed_amount,
  count(*) FILTER (WHERE state = ANY(%(open)s)) AS open_cases,
  sum(amount_due) FILTER (WHERE state = ANY(%(open)s)) AS revenue_at_risk,
  count(*) FILTER (WHERE state = 'recovered') AS recovered_cases,
  sum(recovered_amount) FILTER (WHERE state = 'recovered') AS recovered_revenue,
  count(*) FILTER (WHERE state = ANY(%(lost)s)) AS lost_cases,
  sum(amount_due) FILTER (WHERE state = ANY(%(lost)s)) AS lost_amount,
  sum(attempts_made) AS retries,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM recovered_at - first_failed_at))
    FILTER (WHERE state = 'recovered' AND recovered_at IS NOT NULL) AS ttr_median,
  percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM recovered_at - first_failed_at))
    FILTER (WHERE state = 'recovered' AND recovered_at IS NOT NULL) AS ttr_p90
"""

SUMMARY_SQL = (CASES_CTE + "SELECT currency, CASE"
               + "".join(f" WHEN grouping({d}) = 0 THEN '{d}'" for d in a.DIMENSIONS)
               + " ELSE 'total' END AS dimension, coalesce(" + ", ".join(a.DIMENSIONS) + ") AS key,"
               + AGGREGATES + " FROM cases GROUP BY GROUPING SETS ((currency), "
               + ", ".join(f"(currency, {d})" for d in a.DIMENSIONS) + ")")  # fmt: skip

DAILY_COHORT_SQL = (CASES_CTE + "SELECT (first_failed_at AT TIME ZONE 'UTC')::date AS day, currency,"
                    + AGGREGATES + " FROM cases GROUP BY 1, 2 ORDER BY 1, 2")  # fmt: skip

DAILY_ACTIVITY_SQL = """
SELECT ((payload->>'at')::timestamptz AT TIME ZONE 'UTC')::date AS day, coalesce(payload->>'currency', 'unknown')
         AS currency,
       count(*) FILTER (WHERE event_type = 'PaymentFailed') AS failures,
       sum((payload->>'amount_due')::bigint) FILTER (WHERE event_type = 'PaymentFailed') AS failed_amount,
       count(*) FILTER (WHERE event_type = 'InvoiceRecovered') AS recoveries,
       sum((payload->>'amount')::bigint) FILTER (WHERE event_type = 'InvoiceRecovered') AS recovered_amount
FROM events
WHERE tenant_id = %(tenant)s AND event_type IN ('PaymentFailed', 'InvoiceRecovered') AND payload->>'at' IS NOT NULL
  AND (%(start)s::timestamptz IS NULL OR (payload->>'at')::timestamptz >= %(start)s)
  AND (%(end)s::timestamptz IS NULL OR (payload->>'at')::timestamptz < %(end)s)
GROUP BY 1, 2 ORDER BY 1, 2
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

_WINDOW_PARAMS = frozenset({"tenant", "from", "to"})
_CASE_PARAMS = _WINDOW_PARAMS | {"state", "category", "reason", "segment", "strategy", "provider", "customer",
                                 "amount_min", "amount_max", "limit", "after"}  # fmt: skip


def _json(value: Any) -> Response:
    return Response(dumps(value), media_type="application/json")


def _bad(exc: a.ParameterError) -> ProblemError:
    return ProblemError(400, "invalid-parameter", "Invalid parameter", str(exc), parameter=exc.parameter)


async def _tenant(request: Request) -> str:
    from gateway.auth import tenant_of

    tenant = tenant_of(request)  # the principal's (a platform principal may name another; recorded)
    if await request.app.state.platform.tenants.get(tenant) is None:
        raise ProblemError(404, "not-found", "Not Found", f"no tenant {tenant!r}", parameter="tenant")
    return tenant


def _window_args(tenant: str, window: a.Window) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "start": window.start,
        "end": window.end,
        "open": list(a.OPEN_STATES),
        "lost": list(a.LOST_STATES),
    }


async def _query(db: Any, sql: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        cur = await conn.execute(sql, args)
        rows: list[dict[str, Any]] = await cur.fetchall()
    return rows


# The queries behind the endpoints, for every other reader of the same figures (the dashboard): one source of truth.

async def summary_of(db: Any, tenant: str, window: a.Window) -> dict[str, Any]:
    """What `/api/analytics/summary` answers (without the window echo)."""
    return a.shape_summary(await _query(db, SUMMARY_SQL, _window_args(tenant, window)))


async def daily_of(db: Any, tenant: str, window: a.Window) -> list[dict[str, Any]]:
    """What `/api/analytics/daily` answers in `days`."""
    args = _window_args(tenant, window)
    return a.shape_daily(await _query(db, DAILY_COHORT_SQL, args), await _query(db, DAILY_ACTIVITY_SQL, args))


async def cases_of(db: Any, tenant: str, f: a.CaseFilters) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `/api/cases` and the cursor of the next (None: the last page)."""
    after = f.after or (None, None, None)
    args = {**_window_args(tenant, f.window), **f.model_dump(exclude={"window", "after"}),
            "after_at": after[0], "after_customer": after[1], "after_invoice": after[2]}
    rows = await _query(db, CASES_SQL, args)
    return rows, a.encode_cursor(rows[-1]) if len(rows) == f.limit else None


def _parsed_window(request: Request) -> a.Window:
    try:
        a.check_known(request.query_params, _WINDOW_PARAMS)
        return a.parse_window(request.query_params)
    except a.ParameterError as exc:
        raise _bad(exc) from None


def _window_json(tenant: str, window: a.Window) -> dict[str, Any]:
    return {"tenant": tenant, "from": window.start, "to": window.end}


async def summary(request: Request) -> Response:
    """Totals per currency and breakdowns by category, reason, segment, strategy and provider."""
    window = _parsed_window(request)
    tenant = await _tenant(request)
    return _json({**_window_json(tenant, window), **await summary_of(request.app.state.platform.db, tenant, window)})


async def daily(request: Request) -> Response:
    """Per UTC day and currency: the cohort that first failed that day and that day's failures and recoveries."""
    window = _parsed_window(request)
    tenant = await _tenant(request)
    days = await daily_of(request.app.state.platform.db, tenant, window)
    return _json({**_window_json(tenant, window), "days": days})


async def list_cases(request: Request) -> Response:
    """One row per invoice case, filtered, ordered by first failure; page with `after=<next_after>`."""
    try:
        a.check_known(request.query_params, _CASE_PARAMS)
        f = a.parse_case_filters(request.query_params)
    except a.ParameterError as exc:
        raise _bad(exc) from None
    tenant = await _tenant(request)
    rows, next_after = await cases_of(request.app.state.platform.db, tenant, f)
    return _json({"tenant": tenant, "data": rows, "next_after": next_after})


ROUTES = [
    Route("/api/cases", list_cases, methods=["GET"]),
    Route("/api/analytics/summary", summary, methods=["GET"]),
    Route("/api/analytics/daily", daily, methods=["GET"]),
]
