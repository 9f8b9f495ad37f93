"""Cases and recovery analytics over the event store: `/api/cases`, `/api/analytics/summary`, `/daily` — and the
same reads for the dashboard's pages, so that both show one set of figures.

Every query is bound to one tenant (invariant I8). The metric definitions live in `actors.domain.analytics`;
this module only turns parameters into the read model's arguments (`store/analytics.py`) and rows into JSON.

Counts and amounts are sums, read from daily rollups kept in step with the cases and events by triggers (migration
0040): a window reads its whole days' rollup rows and, case by case, only the partial days at its edges. Time to
recover (median, p90) is not a sum, so it is not rolled up: it is computed exactly, as before, over the window's
recovered cases alone (an index-only range scan). A histogram rollup would be cheaper to read but would publish an
interpolated figure that nobody could reproduce from the case list, with an error set by bucket bounds chosen in
advance; the recovered cases are a fraction of all of them, and sorting them is the one cost left that grows with
the tenant (about 0.1 s for 40,000 recovered cases; docs/BENCHMARKS.md).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from actors.domain import analytics as a
from gateway.jsonbody import dumps
from gateway.problems import ProblemError
from store import analytics as store_analytics

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


# The queries behind the endpoints, for every other reader of the same figures (the dashboard): one source of truth.

async def summary_of(db: Any, tenant: str, window: a.Window) -> dict[str, Any]:
    """What `/api/analytics/summary` answers (without the window echo)."""
    return a.shape_summary(await store_analytics.summary_rows(db, _window_args(tenant, window)))


async def daily_of(db: Any, tenant: str, window: a.Window) -> list[dict[str, Any]]:
    """What `/api/analytics/daily` answers in `days`."""
    args = _window_args(tenant, window)
    return a.shape_daily(*await store_analytics.daily_rows(db, args))


async def holdout_of(db: Any, tenant: str, window: a.Window) -> list[dict[str, Any]]:
    """What `/api/analytics/holdout` answers in `currencies`."""
    return a.holdout_uplift_from_sums(await store_analytics.arm_sums(db, _window_args(tenant, window)))


async def cases_of(db: Any, tenant: str, f: a.CaseFilters) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `/api/cases` and the cursor of the next (None: the last page)."""
    after = f.after or (None, None, None)
    args = {**_window_args(tenant, f.window), **f.model_dump(exclude={"window", "after"}),
            "after_at": after[0], "after_customer": after[1], "after_invoice": after[2]}
    rows = await store_analytics.case_rows(db, args)
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


async def holdout(request: Request) -> Response:
    """What the recovery earned over the no-retry-policy line: the policy's recovery rate against the holdout
    arm's (cases planned by the baseline, a stable random share per tenant), per currency, with 95 % intervals."""
    window = _parsed_window(request)
    tenant = await _tenant(request)
    return _json({**_window_json(tenant, window),
                  "currencies": await holdout_of(request.app.state.platform.db, tenant, window)})


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
    Route("/api/analytics/holdout", holdout, methods=["GET"]),
]
