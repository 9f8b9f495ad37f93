"""The Stripe API subset over HTTP: bearer auth, form bodies, Idempotency-Key replay, Stripe-shaped errors.

Order per request, as Stripe does it: authenticate (401, nothing stored) → rate limit (429, nothing stored) →
idempotent replay or `idempotency_error` for a key reused with other parameters → execute under the simulator
lock → store the first response (status and body, errors and 500s included) under (API key, Idempotency-Key).

Responses are rendered in the request's `Stripe-Version` (else the account's default) with its `expand[]`
paths applied. Every GET is counted in `Simulator.api_reads` by (method, route template), and every request in
`Simulator.api_requests_by_key` by (API key, method, route template): which key served which call.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator import handlers as w
from simulator import reads as r
from simulator import render
from simulator.core import Simulator
from simulator.errors import (
    StripeApiError,
    api_error,
    idempotency_mismatch,
    invalid_api_key,
    invalid_request,
    rate_limited,
)
from simulator.events import RequestRef
from simulator.expansion import expand
from simulator.forms import parse_form
from simulator.idempotency import StoredResponse
from simulator.versions import View, valid_version, view_of

Params = dict[str, Any]
Handler = Callable[[Simulator, Params, dict[str, str], RequestRef, View], dict[str, Any]]


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


def _expand_paths(params: Params) -> list[str]:
    """`expand[]=a&expand[]=b` (or `expand[0]=…`, or a single `expand=a`) → ["a", "b"]."""
    value = params.pop("expand", None)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ValueError("expand must be a list of strings, e.g. expand[]=latest_charge")


def endpoint(
    sim: Simulator, handler: Handler, template: str, charges: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        version = request.headers.get("stripe-version") or sim.settings.api_version
        request_id = sim.ids.new("req")
        try:
            api_key = _api_key(request, sim)
            with sim.lock:
                if sim.fault_rng.random() < sim.faults.api_rate_limit_rate:
                    raise rate_limited()
            params, pairs = await _params(request)
            view = view_of(valid_version(version), _expand_paths(params))
        except StripeApiError as exc:
            return _json(exc.status, orjson.dumps(exc.body()), request_id, version)
        except (ValueError, UnicodeDecodeError) as exc:
            error = invalid_request(str(exc))
            return _json(error.status, orjson.dumps(error.body()), request_id, version)
        key = request.headers.get("idempotency-key") if request.method == "POST" else None
        fingerprint = (request.method, request.url.path, pairs)
        with sim.lock:
            sim.api_requests_by_key[(api_key, request.method, template)] += 1
            if request.method == "GET":
                sim.api_reads[("GET", template)] += 1
                sim.api_reads_by_path[("GET", request.url.path)] += 1
            if key is not None and (stored := sim.idempotency.lookup(api_key, key, sim.now())) is not None:
                if stored.fingerprint != fingerprint:
                    error = idempotency_mismatch(key)
                    return _json(error.status, orjson.dumps(error.body()), request_id, version)
                return _json(stored.status, stored.body, stored.request_id, version, replayed=True)
            req = RequestRef(request_id, key, api_key)
            status, body = _execute(sim, handler, params, dict(request.path_params), req, view, charges)
            if key is not None:
                sim.idempotency.store(api_key, key, StoredResponse(fingerprint, status, body, sim.now(), request_id))
        return _json(status, body, request_id, version)

    return serve


def _execute(
    sim: Simulator, handler: Handler, params: Params, path: dict[str, str], req: RequestRef, view: View, charges: bool
) -> tuple[int, bytes]:
    if sim.fault_rng.random() < sim.faults.api_error_rate:
        return 500, orjson.dumps(api_error().body())
    try:
        obj = handler(sim, params, path, req, view)
        if view.expand:
            expand(obj, view.expand, lambda field, oid: render.by_id(sim.state, field, oid, view))
        status, body = 200, orjson.dumps(obj)
    except StripeApiError as exc:
        status, body = exc.status, orjson.dumps(exc.body())
    if charges and sim.fault_rng.random() < sim.faults.api_error_after_charge_rate:
        return 500, orjson.dumps(api_error().body())
    return status, body


#: (path template, methods, handler, charges money)
TABLE: list[tuple[str, str, Handler, bool]] = [
    ("/v1/customers", "POST", w.create_customer, False),
    ("/v1/customers/{id}", "GET", r.customer, False),
    ("/v1/customers/{id}", "POST", w.update_customer, False),
    ("/v1/customers/{customer}/sources", "GET", r.sources, False),
    ("/v1/customers/{customer}/sources", "POST", w.create_source, False),
    ("/v1/customers/{customer}/sources/{id}", "GET", r.source, False),
    ("/v1/customers/{customer}/sources/{id}", "POST", w.update_source, False),
    ("/v1/customers/{customer}/payment_methods", "GET", r.payment_methods, False),
    ("/v1/payment_methods", "GET", r.payment_methods, False),
    ("/v1/payment_methods", "POST", w.create_payment_method, False),
    ("/v1/payment_methods/{id}", "GET", r.payment_method, False),
    ("/v1/payment_methods/{id}/attach", "POST", w.attach, False),
    ("/v1/setup_intents", "POST", w.create_setup_intent, False),
    ("/v1/setup_intents/{id}", "GET", r.setup_intent, False),
    ("/v1/setup_intents/{id}/confirm", "POST", w.confirm_setup_intent, False),
    ("/v1/subscriptions", "GET", r.subscriptions, False),
    ("/v1/subscriptions", "POST", w.create_subscription, False),
    ("/v1/subscriptions/{id}", "GET", r.subscription, False),
    ("/v1/subscriptions/{id}", "DELETE", w.cancel_subscription, False),
    ("/v1/invoiceitems", "GET", r.invoice_items, False),
    ("/v1/invoiceitems", "POST", w.create_invoice_item, False),
    ("/v1/invoiceitems/{id}", "GET", r.invoice_item, False),
    ("/v1/invoices", "GET", r.invoices, False),
    ("/v1/invoices", "POST", w.create_invoice, False),
    ("/v1/invoices/{id}", "GET", r.invoice, False),
    ("/v1/invoices/{id}/pay", "POST", w.pay_invoice, True),
    ("/v1/invoices/{id}/finalize", "POST", w.finalize_invoice, False),
    ("/v1/invoices/{id}/void", "POST", w.void_invoice, False),
    ("/v1/invoices/{id}/mark_uncollectible", "POST", w.mark_uncollectible, False),
    ("/v1/invoice_payments", "GET", r.invoice_payments, False),
    ("/v1/invoice_payments/{id}", "GET", r.invoice_payment, False),
    ("/v1/payment_intents", "GET", r.payment_intents, False),
    ("/v1/payment_intents", "POST", w.create_payment_intent, True),
    ("/v1/payment_intents/{id}", "GET", r.payment_intent, False),
    ("/v1/payment_intents/{id}/confirm", "POST", w.confirm_payment_intent, True),
    ("/v1/charges", "GET", r.charges, False),
    ("/v1/charges/{id}", "GET", r.charge, False),
    ("/v1/events", "GET", r.events, False),
    ("/v1/events/{id}", "GET", r.event, False),
    ("/v1/webhook_endpoints", "POST", w.create_webhook_endpoint, False),
    ("/v1/webhook_endpoints", "GET", r.webhook_endpoints, False),
    ("/v1/webhook_endpoints/{id}", "GET", r.webhook_endpoint, False),
    ("/v1/webhook_endpoints/{id}", "POST", w.update_webhook_endpoint, False),
    ("/v1/webhook_endpoints/{id}", "DELETE", w.delete_webhook_endpoint, False),
]


def routes(sim: Simulator) -> list[Route]:
    """One route per (template, method), then Stripe's 404 for anything else under /v1."""
    served = [
        Route(path, endpoint(sim, handler, path, charges), methods=[method])
        for path, method, handler, charges in TABLE
    ]
    return [*served, Route("/v1/{rest:path}", _unrecognized, methods=["GET", "POST", "DELETE"])]


async def _unrecognized(request: Request) -> Response:
    message = f"Unrecognized request URL ({request.method}: {request.url.path})."
    return Response(
        orjson.dumps({"error": {"type": "invalid_request_error", "message": message}}),
        status_code=404,
        media_type="application/json",
    )
