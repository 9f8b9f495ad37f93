"""The REST API (read side): deliveries, customers and their trail."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.jsonbody import dumps
from gateway.problems import ProblemError
from store import checkpoints, deliveries, events
from store.deliveries import DeliveryStatus

_STATUSES = {str(s) for s in DeliveryStatus}


def _json(value: Any, status: int = 200) -> Response:
    return Response(dumps(value), status_code=status, media_type="application/json")


def _tenant(request: Request) -> str:
    """The principal's tenant (a platform principal may name another with `?tenant=`; recorded)."""
    from gateway.auth import tenant_of

    return tenant_of(request)


async def list_deliveries(request: Request) -> Response:
    status = request.query_params.get("status")
    if status is not None and status not in _STATUSES:
        raise ProblemError(400, "invalid-parameter", "Invalid parameter",
                           f"status must be one of {sorted(_STATUSES)}, got {status!r}")
    limit = _int_param(request, "limit", 100, 1, 1000)
    after = _int_param(request, "after", 0, 0, 2**62)
    async with request.app.state.platform.db.connection() as conn:
        rows = await deliveries.page(conn, _tenant(request), DeliveryStatus(status) if status else None, after, limit)
    return _json({"data": rows, "next_after": rows[-1]["delivery_id"] if rows else None})


async def get_delivery(request: Request) -> Response:
    delivery_id = request.path_params["delivery_id"]
    async with request.app.state.platform.db.connection() as conn:
        row = await deliveries.one(conn, _tenant(request), delivery_id)
    if row is None:
        raise ProblemError(404, "not-found", "Not Found", f"no delivery {delivery_id}")
    from gateway.auth import principal_of

    if not principal_of(request).grants("admin"):  # raw bodies hold personal data: admins only
        for field in ("headers", "body"):
            row.pop(field)
    return _json(row)


async def get_customer(request: Request) -> Response:
    """The customer's state, open cases and each case's next action with its explanation."""
    from actors.domain.case import customer_status

    customer_id = request.path_params["customer_id"]
    async with request.app.state.platform.db.connection() as conn:
        row = await checkpoints.row(conn, _tenant(request), customer_id)
    if row is None:
        raise ProblemError(404, "not-found", "Not Found", f"no customer {customer_id!r} in this tenant")
    state = row["state"]
    cases = [{k: c.get(k) for k in ("invoice_id", "state", "amount_due", "currency", "attempts_made",
                                    "max_attempts", "classification", "strategy", "next_action", "explanation",
                                    "recovered_amount", "closed_reason")} for c in state["cases"].values()]
    return _json({"customer_id": customer_id, "status": customer_status(state), "version": row["version"],
                  "updated_at": row["updated_at"], "cases": cases})


async def get_timeline(request: Request) -> Response:
    """Every delivery and every recorded event of the customer, in order."""
    customer_id, tenant = request.path_params["customer_id"], _tenant(request)
    async with request.app.state.platform.db.connection() as conn:
        items = await timeline_items(conn, tenant, customer_id)
    if not items:
        raise ProblemError(404, "not-found", "Not Found", f"no customer {customer_id!r} in this tenant")
    return _json({"customer_id": customer_id, "items": items})


async def timeline_items(conn: Any, tenant: str, customer_id: str) -> list[dict[str, Any]]:
    """The customer's deliveries and recorded events, in order (the API's timeline and the dashboard's story)."""
    received = await deliveries.of_customer(conn, tenant, customer_id)
    recorded = await events.timeline(conn, tenant, customer_id)
    for event in recorded:
        event["reason"] = event["payload"].get("explanation") or event["payload"].get("reason")
    return sorted([*received, *recorded], key=lambda r: (r["at"], r["kind"] == "event", r["ref"]))


_PROFILE_FIELDS = {"country", "timezone", "currency", "mrr", "plan", "tags", "tenure_days", "email"}


async def put_profile(request: Request) -> Response:
    """What the business knows of the customer (value, geography, plan, tags), used by segmentation."""
    from pydantic import ValidationError

    from gateway.dispatch import DispatchUnavailable
    from strategies.segments import CustomerProfile

    customer_id, tenant = request.path_params["customer_id"], _tenant(request)
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise ProblemError(400, "invalid-body", "Body is not JSON", str(exc)) from None
    if not isinstance(body, dict) or set(body) - _PROFILE_FIELDS:
        unknown = sorted(set(body) - _PROFILE_FIELDS) if isinstance(body, dict) else "not an object"
        raise ProblemError(400, "invalid-profile", "Invalid profile",
                           f"allowed fields: {sorted(_PROFILE_FIELDS)}; got {unknown}")
    try:
        CustomerProfile.model_validate({"customer_id": customer_id, **body})
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ProblemError(400, "invalid-profile", "Invalid profile",
                           f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}") from None
    request_id = request.headers.get("idempotency-key") or orjson.dumps(body, option=orjson.OPT_SORT_KEYS).hex()[:64]
    try:
        await request.app.state.platform.dispatcher.update_profile(tenant, customer_id, body, request_id)
    except DispatchUnavailable as exc:
        raise ProblemError(503, "unavailable", "Service Unavailable", f"try again: {exc}") from None
    return _json({"customer_id": customer_id, "profile": body})


async def classify(request: Request) -> Response:
    """Classify decline codes as payrisk would (the tenant's tables and overrides), through the classifier pool."""
    from pydantic import ValidationError

    from actors.domain.inbound import DeclineInfo
    from gateway.dispatch import DispatchUnavailable

    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise ProblemError(400, "invalid-body", "Body is not JSON", str(exc)) from None
    declines = body.get("declines") if isinstance(body, dict) else None
    provider = body.get("provider", "stripe") if isinstance(body, dict) else None
    if not isinstance(declines, list) or not 1 <= len(declines) <= 1000 or not isinstance(provider, str) \
            or provider not in _PROVIDERS:  # a list or an object as provider is a 400, not a TypeError
        raise ProblemError(400, "invalid-body", "Invalid request",
                           f"expected {{provider: one of {sorted(_PROVIDERS)}, declines: [1..1000 objects]}}")
    try:
        checked = [DeclineInfo.model_validate(d).model_dump(exclude_none=True) for d in declines]
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ProblemError(400, "invalid-body", "Invalid decline",
                           f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}") from None
    try:
        results = await request.app.state.platform.dispatcher.classify(_tenant(request), provider, checked)
    except DispatchUnavailable as exc:
        raise ProblemError(503, "unavailable", "Service Unavailable", f"try again: {exc}") from None
    return _json({"classifications": results})


_PROVIDERS = {"stripe", "adyen", "braintree", "paddle"}


async def _known_tenant(request: Request) -> str:
    tenant = str(request.path_params["tenant"])
    if await request.app.state.platform.tenants.get(tenant) is None:
        raise ProblemError(404, "not-found", "Not Found", f"no tenant {tenant!r}")
    return tenant


async def get_classification_overrides(request: Request) -> Response:
    """The tenant's classification overrides as stored, with their revision (0: none ever stored)."""
    from store import classification_overrides

    tenant = await _known_tenant(request)
    async with request.app.state.platform.db.connection() as conn:
        stored = await classification_overrides.load(conn, tenant)
    return _json(stored.as_json())


def _invalid_override(field: str, problem: str) -> ProblemError:
    return ProblemError(400, "invalid-classification-override", "Invalid classification override",
                        f"{field}: {problem}", field=field)


async def put_classification_overrides(request: Request) -> Response:
    """Replace the tenant's classification overrides (validated as override files are); shards pick them up
    within a few seconds. `{"overrides": []}` clears them."""
    from actors.domain.classification import ClassificationTableError, default_tables
    from actors.domain.classification.loading import check_tenant_overrides, parse_json
    from store import classification_overrides

    tenant = await _known_tenant(request)
    try:
        body = parse_json(await request.body(), "body")
    except ClassificationTableError as exc:
        field = "body" if exc.problem.startswith("invalid JSON") else exc.row
        raise _invalid_override(field, exc.problem) from None
    if not isinstance(body, dict) or set(body) != {"overrides"}:
        unknown = sorted(set(body) - {"overrides"}) if isinstance(body, dict) else []
        raise _invalid_override(unknown[0] if unknown else "overrides", 'expected {"overrides": [override objects]}')
    try:
        check_tenant_overrides(tenant, body["overrides"], default_tables(), source="overrides")
    except ClassificationTableError as exc:
        raise _invalid_override(exc.file if exc.row == "-" else f"{exc.file}.{exc.row}", exc.problem) from None
    documents = [{**document, "tenant": tenant} for document in body["overrides"]]
    async with request.app.state.platform.db.connection() as conn:
        stored = await classification_overrides.save(conn, tenant, documents)
    return _json(stored.as_json())


async def openapi(request: Request) -> Response:
    from pathlib import Path

    import yaml

    spec = yaml.safe_load((Path(__file__).resolve().parent / "openapi.yaml").read_text())  # docs/ links to it
    return _json(spec)


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses (a 500 before)
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 20) or not low <= int(raw) <= high:
        raise ProblemError(400, "invalid-parameter", "Invalid parameter",
                           f"{name} must be an integer between {low} and {high}, got {raw!r}")
    return int(raw)


ROUTES = [
    Route("/api/deliveries", list_deliveries, methods=["GET"]),
    Route("/api/deliveries/{delivery_id:int}", get_delivery, methods=["GET"]),
    Route("/api/customers/{customer_id}", get_customer, methods=["GET"]),
    Route("/api/customers/{customer_id}/timeline", get_timeline, methods=["GET"]),
    Route("/api/customers/{customer_id}/profile", put_profile, methods=["PUT"]),
    Route("/api/classify", classify, methods=["POST"]),
    Route("/api/tenants/{tenant}/classification-overrides", get_classification_overrides, methods=["GET"]),
    Route("/api/tenants/{tenant}/classification-overrides", put_classification_overrides, methods=["PUT"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
