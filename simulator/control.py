"""Control endpoints under `/_sim/` (JSON in, JSON out; no auth — bind to 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.core import Simulator
from simulator.errors import StripeApiError


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    data = orjson.loads(raw) if raw.strip() else {}
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def _target(sim: Simulator, body: dict[str, Any]) -> datetime:
    if "to" in body:
        return datetime.fromisoformat(str(body["to"]))
    seconds = float(body.get("seconds", 0)) + 86400 * float(body.get("days", 0))
    return sim.now() + timedelta(seconds=seconds)


class Control:
    """One method per endpoint; see docs/SIMULATOR.md for the bodies."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    async def state(self, request: Request) -> Response:
        sim, s = self.sim, self.sim.state
        return _json(
            {
                "now": sim.now().isoformat(),
                "model": sim.model.name,
                "api_version": sim.settings.api_version,
                "customers": len(s.customers),
                "subscriptions": len(s.subscriptions),
                "invoices": len(s.invoices),
                "charges": len(s.charges),
                "events": len(sim.events),
                "pending_webhooks": len(sim.outbox.pending()),
                "webhook_endpoints": [ep.as_json() for ep in sim.webhook_endpoints()],
                "faults": sim.faults.model_dump(),
            }
        )

    async def clock(self, request: Request) -> Response:
        return _json({"now": self.sim.now().isoformat()})

    async def advance(self, request: Request) -> Response:
        ran = self.sim.advance(_target(self.sim, await _body(request)))
        return _json({"now": self.sim.now().isoformat(), "ran": ran})

    async def faults(self, request: Request) -> Response:
        if request.method == "POST":
            self.sim.set_faults(**await _body(request))
        return _json(self.sim.faults.model_dump())

    async def ledger(self, request: Request) -> Response:
        query = request.query_params
        entries = self.sim.ledger_entries(query.get("invoice"), query.get("payment_intent"))
        return _json(
            {"entries": [e.model_dump(mode="json") for e in entries], "double_charges": self.sim.double_charges()}
        )

    async def flush(self, request: Request) -> Response:
        delivered = await self.sim.flush(bool((await _body(request)).get("everything", False)))
        return _json({"delivered": delivered, "pending": len(self.sim.outbox.pending())})

    async def webhooks(self, request: Request) -> Response:
        outbox = self.sim.outbox
        pending = [
            {"event_id": p.event_id, "event_type": p.event_type, "due_at": p.due_at.isoformat(), "attempts": p.attempts}
            for p in outbox.pending()
        ]
        return _json(
            {
                "url": outbox.url,
                "pending": pending,
                "deliveries": [d.as_json() for d in outbox.deliveries],
                "abandoned": [p.event_id for p in outbox.abandoned],
            }
        )

    async def population(self, request: Request) -> Response:
        sim = self.sim
        if request.method == "POST":
            sim.generate(int((await _body(request)).get("customers", 0)))
        with sim.lock:
            subs = {s.customer: s.id for s in sim.state.subscriptions.values()}
            rows = [
                {
                    "customer": c.id,
                    "email": c.email,
                    "country": c.country,
                    "payment_method": c.default_payment_method,
                    "subscription": subs.get(c.id),
                }
                for c in sim.state.customers.values()
            ]
        return _json({"customers": rows})

    async def force(self, request: Request) -> Response:
        self.sim.force_card(request.path_params["id"], (await _body(request)).get("outcome"))
        return _json({"payment_method": request.path_params["id"]})

    async def card_update(self, request: Request) -> Response:
        """The card account updater: `{"exp_month", "exp_year", "last4", "outcome"}` (all optional)."""
        body = await _body(request)
        unknown = set(body) - {"exp_month", "exp_year", "last4", "outcome"}
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        pm = self.sim.card_updater(request.path_params["id"], **body)
        return _json({"payment_method": pm.id, "exp_month": pm.exp_month, "exp_year": pm.exp_year, "last4": pm.last4})

    async def webhook_endpoints(self, request: Request) -> Response:
        """GET: every endpoint. POST: a new one, `{"url", "api_version", "enabled_events", "expand",
        "omit_previous_attributes", "secret", "id"}` (all but `url` optional)."""
        sim = self.sim
        if request.method == "POST":
            body = await _body(request)
            endpoint = sim.add_webhook_endpoint(body.pop("url", None), **body)
            return _json(endpoint.as_json())
        return _json({"data": [ep.as_json() for ep in sim.webhook_endpoints()]})

    async def webhook_endpoint(self, request: Request) -> Response:
        """GET one; POST a patch of its fields; DELETE it (and what is queued for it)."""
        sim, endpoint_id = self.sim, request.path_params["id"]
        if request.method == "POST":
            return _json(sim.update_webhook_endpoint(endpoint_id, **await _body(request)).as_json())
        if request.method == "DELETE":
            if not sim.delete_webhook_endpoint(endpoint_id):
                raise KeyError(f"no webhook endpoint {endpoint_id!r}")
            return _json({"id": endpoint_id, "deleted": True})
        found = next((ep for ep in sim.webhook_endpoints() if ep.id == endpoint_id), None)
        if found is None:
            raise KeyError(f"no webhook endpoint {endpoint_id!r}")
        return _json(found.as_json())

    async def api_reads(self, request: Request) -> Response:
        """GET: the API reads served so far, by route template and by path; DELETE: start counting afresh."""
        sim = self.sim
        with sim.lock:
            if request.method == "DELETE":
                sim.api_reads.clear()
                sim.api_reads_by_path.clear()
            rows = [{"method": m, "path": p, "count": n} for (m, p), n in sorted(sim.api_reads.items())]
            by_path = [{"method": m, "path": p, "count": n} for (m, p), n in sorted(sim.api_reads_by_path.items())]
        return _json({"reads": rows, "by_path": by_path})

    async def reset(self, request: Request) -> Response:
        self.sim.reset()
        return _json({"reset": True, "now": self.sim.now().isoformat()})


Endpoint = Callable[[Request], Awaitable[Response]]


def _guarded(handler: Endpoint) -> Endpoint:
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            return _json({"error": {"message": str(exc)}}, status=400)
        except StripeApiError as exc:  # e.g. an unknown payment method
            return _json(exc.body(), status=exc.status)

    return run


def routes(sim: Simulator) -> list[Route]:
    c = Control(sim)
    table: list[tuple[str, Endpoint, list[str]]] = [
        ("/_sim", c.state, ["GET"]),
        ("/_sim/clock", c.clock, ["GET"]),
        ("/_sim/clock/advance", c.advance, ["POST"]),
        ("/_sim/faults", c.faults, ["GET", "POST"]),
        ("/_sim/ledger", c.ledger, ["GET"]),
        ("/_sim/flush", c.flush, ["POST"]),
        ("/_sim/webhooks", c.webhooks, ["GET"]),
        ("/_sim/population", c.population, ["GET", "POST"]),
        ("/_sim/cards/{id}/force", c.force, ["POST"]),
        ("/_sim/cards/{id}/update", c.card_update, ["POST"]),
        ("/_sim/webhook_endpoints", c.webhook_endpoints, ["GET", "POST"]),
        ("/_sim/webhook_endpoints/{id}", c.webhook_endpoint, ["GET", "POST", "DELETE"]),
        ("/_sim/api_reads", c.api_reads, ["GET", "DELETE"]),
        ("/_sim/reset", c.reset, ["POST"]),
    ]
    return [Route(path, _guarded(handler), methods=methods) for path, handler, methods in table]
