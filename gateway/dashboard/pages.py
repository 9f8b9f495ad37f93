"""The dashboard's pages (GET): overview, cases (+ CSV), a customer's story, incidents, deliveries, strategies and
the API reference. Each is scoped to the principal's tenant; figures come from gateway.analytics' queries."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from actors.domain import analytics as a
from gateway import analytics
from gateway.auth import tenant_of
from gateway.dashboard import queries
from gateway.dashboard.render import error_page, page
from gateway.dashboard.story import story
from gateway.problems import ProblemError
from store import StoreUnavailable

log = structlog.get_logger("payrisk.dashboard")

Handler = Callable[[Request], Awaitable[Response]]
CSV_COLUMNS = ("customer_id", "invoice_id", "state", "amount_due", "currency", "attempts_made", "max_attempts",
               "category", "reason", "segment", "strategy", "provider", "first_failed_at", "last_failed_at",
               "recovered_amount", "recovered_at", "closed_reason")  # fmt: skip
_FILTERS = ("from", "to", "state", "category", "reason", "segment", "strategy", "provider", "customer", "amount_min",
            "amount_max")  # fmt: skip


def html(handler: Handler) -> Handler:
    """Errors of a page are readable pages (a bad parameter, an unknown customer), never problem JSON."""

    @wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except a.ParameterError as exc:
            return error_page(request.scope, 400, "Invalid parameter", str(exc))
        except ProblemError as exc:
            return error_page(request.scope, exc.status, exc.title, exc.detail)
        except StoreUnavailable:
            return error_page(request.scope, 503, "Service Unavailable", "PostgreSQL is not reachable; try again")
        except Exception as exc:  # noqa: BLE001 - a page answers a readable page, and the log keeps the cause
            log.exception("dashboard.page_failed", path=request.url.path, error=type(exc).__name__)
            return error_page(request.scope, 500, "Internal Server Error", "the page could not be shown")

    return wrapped


def _given(request: Request, names: tuple[str, ...]) -> dict[str, str]:
    """The form's filled-in fields (an empty field is no filter); anything else is refused by name."""
    a.check_known({k: v for k, v in request.query_params.items() if k != "tenant"},
                  frozenset(names) | {"after", "limit"})
    return {k: v for k, v in request.query_params.items() if v != "" and k in names + ("after", "limit")}


async def _tenant(request: Request) -> str:
    tenant = tenant_of(request)
    if await request.app.state.platform.tenants.get(tenant) is None:
        raise ProblemError(404, "not-found", "Not Found", f"no tenant {tenant!r}")
    return tenant


@html
async def overview(request: Request) -> Response:
    params = _given(request, ("from", "to"))
    window = a.parse_window(params)
    tenant, db = await _tenant(request), request.app.state.platform.db
    summary = await analytics.summary_of(db, tenant, window)
    days = await analytics.daily_of(db, tenant, window)
    holdout = [h for h in await analytics.holdout_of(db, tenant, window) if h["uplift"] is not None]
    return page(request, "overview.html", tenant=tenant, params=params, summary=summary, days=days,
                charts=_chart_series(days), earned=_earned(summary), holdout=holdout, dimensions=a.DIMENSIONS[:-1])


def _chart_series(days: list[dict[str, Any]]) -> dict[str, dict[str, list[Any]]]:
    """Per currency: days (epoch seconds), failed and recovered amounts (major units) — what the chart draws."""
    series: dict[str, dict[str, list[Any]]] = {}
    for day in days:
        s = series.setdefault(day["currency"], {"x": [], "failed": [], "recovered": []})
        s["x"].append(int(datetime.fromisoformat(day["day"]).replace(tzinfo=UTC).timestamp()))
        s["failed"].append(day["activity"]["failed_amount"] / 100)
        s["recovered"].append(day["activity"]["recovered_amount"] / 100)
    return series


def _earned(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per currency: recovered by our retries vs recovered without one (the provider, the customer, a new card)."""
    out: dict[str, dict[str, Any]] = {}
    for row in summary["by"]["recovered_by"]:
        entry = out.setdefault(row["currency"], {"currency": row["currency"], "retry": 0, "without": 0})
        if row["recovered_by"] == "retry":
            entry["retry"] += row["recovered_revenue"]
        elif row["recovered_by"] != "open":
            entry["without"] += row["recovered_revenue"]
    return list(out.values())


@html
async def cases(request: Request) -> Response:
    params = _given(request, _FILTERS)
    filters = a.parse_case_filters({"limit": "50", **params})
    tenant = await _tenant(request)
    rows, next_after = await analytics.cases_of(request.app.state.platform.db, tenant, filters)
    shown = {k: v for k, v in params.items() if k not in ("after", "limit")}
    return page(request, "cases.html", tenant=tenant, params=shown, rows=rows, next_after=next_after,
                states=sorted(a.CASE_STATES), categories=sorted(a.CATEGORIES))


@html
async def cases_csv(request: Request) -> Response:
    """Exactly the filtered rows, every page of them, streamed."""
    params = {k: v for k, v in _given(request, _FILTERS).items() if k not in ("after", "limit")}
    filters = a.parse_case_filters({**params, "limit": "1000"})
    tenant, db = await _tenant(request), request.app.state.platform.db

    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        f: a.CaseFilters | None = filters
        while f is not None:
            page_rows, cursor = await analytics.cases_of(db, tenant, f)
            for row in page_rows:
                writer.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            f = filters.model_copy(update={"after": a.decode_cursor(cursor)}) if cursor else None

    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="cases-{tenant}.csv"',
                                      "Cache-Control": "no-store"})


@html
async def customer(request: Request) -> Response:
    from actors.domain.decide import _timezone
    from gateway.api import timeline_items

    customer_id, tenant = request.path_params["customer_id"], await _tenant(request)
    async with request.app.state.platform.db.connection() as conn:
        row = await queries.checkpoint(conn, tenant, customer_id)
        items = await timeline_items(conn, tenant, customer_id) if row else []
    if row is None:
        raise ProblemError(404, "not-found", "Not Found", f"no customer {customer_id!r} in this tenant")
    state = row["state"]
    open_cases = sorted(state["cases"].values(), key=lambda c: c.get("first_failed_at") or "", reverse=True)
    zones = {c["invoice_id"]: _timezone(state, c) for c in open_cases}
    return page(request, "customer.html", tenant=tenant, customer_id=customer_id, state=state, cases=open_cases,
                zones=zones, story=story(items), zone=next(iter(zones.values()), None),
                done=request.query_params.get("done"), refused=request.query_params.get("refused"))


@html
async def incidents(request: Request) -> Response:
    tenant = await _tenant(request)
    async with request.app.state.platform.db.connection() as conn:
        monitor = await queries.monitor_events(conn, tenant)
        paused = await queries.paused_retries(conn, tenant)
        pauses = await queries.operator_pauses(conn, tenant)
    return page(request, "incidents.html", tenant=tenant, incidents=_incidents(monitor),
                spikes=[m for m in monitor if m["event_type"] == "SpikeDetected"], paused=paused, pauses=pauses)


def _incidents(monitor: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each incident once: opened (and resolved, when it has), newest first."""
    found: dict[str, dict[str, Any]] = {}
    for event in sorted(monitor, key=lambda m: m["recorded_at"]):
        if event["event_type"] == "SpikeDetected":
            continue
        p = event["payload"]
        entry = found.setdefault(str(p.get("incident_id")), {"incident_id": p.get("incident_id"),
                                                              "provider": p.get("provider"), "resolved_at": None})
        entry.update({"opened_at": event["recorded_at"], "categories": p.get("categories"), "count": p.get("count")}
                     if event["event_type"] == "IncidentOpened" else {"resolved_at": event["recorded_at"]})
    return sorted(found.values(), key=lambda e: str(e.get("opened_at")), reverse=True)


_DELIVERY_STATUSES = ("quarantined", "received", "dispatched", "applied", "ignored")


@html
async def deliveries(request: Request) -> Response:
    params = _given(request, ("status", "result"))
    status = params.get("status", "quarantined")
    if status not in _DELIVERY_STATUSES:
        raise a.ParameterError("status", f"must be one of {', '.join(_DELIVERY_STATUSES)}")
    after = int(params["after"]) if params.get("after", "").isdigit() else 0
    tenant = await _tenant(request)
    async with request.app.state.platform.db.connection() as conn:
        rows = await queries.delivery_page(conn, tenant, status, after, 100)
    return page(request, "deliveries.html", tenant=tenant, wanted=status, statuses=_DELIVERY_STATUSES, rows=rows,
                next_after=rows[-1]["delivery_id"] if len(rows) == 100 else None,
                result=request.query_params.get("result"))


@html
async def strategies(request: Request) -> Response:
    from strategies.loader import default_book, default_segments

    params = _given(request, ("customer",))
    tenant = await _tenant(request)
    explained = None
    if params.get("customer"):
        async with request.app.state.platform.db.connection() as conn:
            row = await queries.checkpoint(conn, tenant, params["customer"])
        if row is None:
            raise ProblemError(404, "not-found", "Not Found", f"no customer {params['customer']!r} in this tenant")
        explained = _explain(row["state"])
    return page(request, "strategies.html", tenant=tenant, book=default_book(), segments=default_segments(),
                customer=params.get("customer", ""), explained=explained)


def _explain(state: dict[str, Any]) -> str:
    """What `payrisk strategies explain --customer` prints, for the customer's latest failing invoice."""
    from actors.domain.strategy_planner import profile_of
    from strategies.cli import explain

    cases = sorted(state["cases"].values(), key=lambda c: c.get("last_failed_at") or "")
    case = cases[-1] if cases else {"card": {}, "amount_due": 0, "currency": "usd"}
    classification = case.get("classification") or {}
    now, out, err = datetime.now(UTC), io.StringIO(), io.StringIO()
    explain(profile_of(state, case, now=now), now=now, category=str(classification.get("category", "SOFT_DECLINE")),
            reason=str(classification.get("reason", "generic_decline")),
            attempts_made=1 + int(case.get("attempts_made") or 0), brand=case["card"].get("card_brand"),
            out=out, err=err)
    return out.getvalue() + err.getvalue()


@html
async def docs(request: Request) -> Response:
    from gateway.dashboard.render import STATIC

    bundled = (STATIC / "vendor" / "swagger-ui" / "swagger-ui-bundle.js").is_file()
    return page(request, "docs.html", bundled=bundled)
