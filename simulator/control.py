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
        entries = self.sim.ledger_entries(request.query_params.get("invoice"))
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
        ("/_sim/reset", c.reset, ["POST"]),
    ]
    return [Route(path, _guarded(handler), methods=methods) for path, handler, methods in table]
