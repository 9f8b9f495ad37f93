"""The Stripe API subset over HTTP: bearer auth, form bodies, Idempotency-Key replay, Stripe-shaped errors.

Order per request, as Stripe does it: authenticate (401, nothing stored) → rate limit (429, nothing stored) →
idempotent replay or `idempotency_error` for a key reused with other parameters → execute under the simulator
lock → store the first response (status and body, errors and 500s included) under (API key, Idempotency-Key).
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator import render
from simulator.core import Simulator
from simulator.errors import (
    StripeApiError,
    api_error,
    idempotency_mismatch,
    invalid_api_key,
    missing,
    rate_limited,
)
from simulator.events import RequestRef
from simulator.forms import parse_form
from simulator.idempotency import StoredResponse
from simulator.render import Shape

Params = dict[str, Any]
Handler = Callable[[Simulator, Params, dict[str, str], RequestRef, Shape], dict[str, Any]]


def _customer_update(sim: Simulator, p: Params, path: dict[str, str], req: RequestRef, shape: Shape) -> dict[str, Any]:
    return render.customer(sim.billing.update_customer(path["id"], p, req))


def _customer(sim: Simulator, p: Params, path: dict[str, str], req: RequestRef, shape: Shape) -> dict[str, Any]:
    if "id" in path:
        return render.customer(sim.billing.customer(path["id"]))
    return render.customer(sim.billing.create_customer(p, req))


def _payment_method(sim: Simulator, p: Params, path: dict[str, str], req: RequestRef, shape: Shape) -> dict[str, Any]:
    if "id" in path:
        return render.payment_method(sim.billing.payment_method(path["id"]))
    return render.payment_method(sim.billing.create_payment_method(p))


def _attach(sim: Simulator, p: Params, path: dict[str, str], req: RequestRef, shape: Shape) -> dict[str, Any]:
    return render.payment_method(sim.billing.attach_payment_method(path["id"], p.get("customer") or "", req))


def _subscription(sim: Simulator, p: Params, path: dict[str, str], req: RequestRef, shape: Shape) -> dict[str, Any]:
    if "id" in path:
        return render.subscription(sim.billing.subscription(path["id"]), shape)
    return render.subscription(sim.charging.create_subscription(p, req), shape)


def _cancel(sim: Simulator, p: Params, path: dict[str, str], req: RequestRef, shape: Shape) -> dict[str, Any]:
    return render.subscription(sim.billing.cancel_subscription(path["id"], req), shape)


def _invoice(sim: Simulator, p: Params, path: dict[str, str], req: RequestRef, shape: Shape) -> dict[str, Any]:
    inv = sim.billing.invoice(path["id"]) if "id" in path else sim.billing.create_invoice(p, req)
    return render.invoice(sim.state, inv, shape)


def _invoice_action(action: str) -> Handler:
    def handle(sim: Simulator, p: Params, path: dict[str, str], req: RequestRef, shape: Shape) -> dict[str, Any]:
        b = sim.billing
        if action == "pay":
            inv = sim.charging.pay(path["id"], p, req)
        elif action == "finalize":
            inv = b.finalize(b.invoice(path["id"]), req)
        else:
            inv = b.close(path["id"], "void" if action == "void" else "uncollectible", req)
        return render.invoice(sim.state, inv, shape)

    return handle


def _events(sim: Simulator, p: Params, path: dict[str, str], req: RequestRef, shape: Shape) -> dict[str, Any]:
    if "id" in path:
        found = next((e for e in sim.events if e["id"] == path["id"]), None)
        if found is None:
            raise missing("event", path["id"])
        return found
    kind, limit = p.get("type"), min(int(p.get("limit") or 10), 100)
    chosen = [e for e in reversed(sim.events) if kind in (None, e["type"])]
    return {"object": "list", "url": "/v1/events", "has_more": len(chosen) > limit, "data": chosen[:limit]}


async def _params(request: Request) -> tuple[Params, tuple[tuple[str, str], ...]]:
    if request.method == "GET":
        return parse_form(request.url.query.encode())
    return parse_form(await request.body())


def _api_key(request: Request, sim: Simulator) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    key = value.strip()
    if scheme.lower() == "basic":
        key = base64.b64decode(value.encode()).decode(errors="replace").split(":", 1)[0]
    if key not in sim.settings.api_keys:
        raise invalid_api_key(key)
    return key


def _json(status: int, body: bytes, request_id: str, version: str, replayed: bool = False) -> Response:
    headers = {"request-id": request_id, "stripe-version": version}
    if replayed:
        headers["idempotent-replayed"] = "true"
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def endpoint(sim: Simulator, handler: Handler, charges: bool = False) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        version = request.headers.get("stripe-version") or sim.settings.api_version
        request_id = sim.ids.new("req")
        try:
            api_key = _api_key(request, sim)
            with sim.lock:
                if sim.fault_rng.random() < sim.faults.api_rate_limit_rate:
                    raise rate_limited()
            params, pairs = await _params(request)
        except StripeApiError as exc:
            return _json(exc.status, orjson.dumps(exc.body()), request_id, version)
        except (ValueError, UnicodeDecodeError) as exc:
            return _json(
                400,
                orjson.dumps({"error": {"type": "invalid_request_error", "message": str(exc)}}),
                request_id,
                version,
            )
        key = request.headers.get("idempotency-key") if request.method == "POST" else None
        fingerprint = (request.method, request.url.path, pairs)
        with sim.lock:
            if key is not None and (stored := sim.idempotency.lookup(api_key, key, sim.now())) is not None:
                if stored.fingerprint != fingerprint:
                    error = idempotency_mismatch(key)
                    return _json(error.status, orjson.dumps(error.body()), request_id, version)
                return _json(stored.status, stored.body, stored.request_id, version, replayed=True)
            status, body = _execute(
                sim,
                handler,
                params,
                dict(request.path_params),
                RequestRef(request_id, key),
                render.shape_of(version),
                charges,
            )
            if key is not None:
                sim.idempotency.store(api_key, key, StoredResponse(fingerprint, status, body, sim.now(), request_id))
        return _json(status, body, request_id, version)

    return serve


def _execute(
    sim: Simulator, handler: Handler, params: Params, path: dict[str, str], req: RequestRef, shape: Shape, charges: bool
) -> tuple[int, bytes]:
    if sim.fault_rng.random() < sim.faults.api_error_rate:
        return 500, orjson.dumps(api_error().body())
    try:
        status, body = 200, orjson.dumps(handler(sim, params, path, req, shape))
    except StripeApiError as exc:
        status, body = exc.status, orjson.dumps(exc.body())
    if charges and sim.fault_rng.random() < sim.faults.api_error_after_charge_rate:
        return 500, orjson.dumps(api_error().body())
    return status, body


def routes(sim: Simulator) -> list[Route]:
    def r(path: str, handler: Handler, methods: list[str], charges: bool = False) -> Route:
        return Route(path, endpoint(sim, handler, charges), methods=methods)

    return [
        r("/v1/customers", _customer, ["POST"]),
        r("/v1/customers/{id}", _customer, ["GET"]),
        r("/v1/customers/{id}", _customer_update, ["POST"]),
        r("/v1/payment_methods", _payment_method, ["POST"]),
        r("/v1/payment_methods/{id}", _payment_method, ["GET"]),
        r("/v1/payment_methods/{id}/attach", _attach, ["POST"]),
        r("/v1/subscriptions", _subscription, ["POST"]),
        r("/v1/subscriptions/{id}", _subscription, ["GET"]),
        r("/v1/subscriptions/{id}", _cancel, ["DELETE"]),
        r("/v1/invoices", _invoice, ["POST"]),
        r("/v1/invoices/{id}", _invoice, ["GET"]),
        r("/v1/invoices/{id}/pay", _invoice_action("pay"), ["POST"], charges=True),
        r("/v1/invoices/{id}/finalize", _invoice_action("finalize"), ["POST"]),
        r("/v1/invoices/{id}/void", _invoice_action("void"), ["POST"]),
        r("/v1/invoices/{id}/mark_uncollectible", _invoice_action("mark_uncollectible"), ["POST"]),
        r("/v1/events", _events, ["GET"]),
        r("/v1/events/{id}", _events, ["GET"]),
        Route("/v1/{rest:path}", _unrecognized, methods=["GET", "POST", "DELETE"]),
    ]


async def _unrecognized(request: Request) -> Response:
    message = f"Unrecognized request URL ({request.method}: {request.url.path})."
    return Response(
        orjson.dumps({"error": {"type": "invalid_request_error", "message": message}}),
        status_code=404,
        media_type="application/json",
    )
