"""The Stripe API's write endpoints (POST/DELETE): one function per endpoint, answering in the request's view.

Every handler has the signature `(sim, params, path params, request, view) -> JSON object` and runs under the
simulator lock; `simulator.api` does authentication, idempotency, expansion and errors around it.
"""

from __future__ import annotations

from typing import Any

from simulator import render
from simulator.core import Simulator
from simulator.errors import invalid_request, missing
from simulator.events import RequestRef
from simulator.versions import View

Params = dict[str, Any]
Path = dict[str, str]
Obj = dict[str, Any]


def create_customer(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.customer(sim.state, sim.billing.create_customer(p, req), view)


def update_customer(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.customer(sim.state, sim.billing.update_customer(path["id"], p, req), view)


def create_source(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.card(sim.billing.create_source(path["customer"], p, req))


def update_source(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.card(sim.billing.update_source(path["customer"], path["id"], p, req))


def create_payment_method(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.payment_method(sim.billing.create_payment_method(p))


def attach(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.payment_method(sim.billing.attach_payment_method(path["id"], p.get("customer") or "", req))


def create_setup_intent(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.setup_intent(sim.billing.create_setup_intent(p, req))


def confirm_setup_intent(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.setup_intent(sim.billing.confirm_setup_intent(path["id"], p, req))


def create_subscription(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.subscription(sim.charging.create_subscription(p, req), view)


def cancel_subscription(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.subscription(sim.billing.cancel_subscription(path["id"], req), view)


def create_invoice(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    """Pending invoice items are included by default before 2022-08-01, as in the request's version."""
    return render.invoice(sim.state, sim.billing.create_invoice(p, req, view.pending_items_included), view)


def create_invoice_item(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.invoice_item(sim.billing.create_invoice_item(p, req), view)


def pay_invoice(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.invoice(sim.state, sim.charging.pay(path["id"], p, req), view)


def finalize_invoice(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    b = sim.billing
    return render.invoice(sim.state, b.finalize(b.invoice(path["id"]), req), view)


def void_invoice(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.invoice(sim.state, sim.billing.close(path["id"], "void", req), view)


def mark_uncollectible(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.invoice(sim.state, sim.billing.close(path["id"], "uncollectible", req), view)


def create_payment_intent(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.payment_intent(sim.state, sim.intents.create(p, req), view)


def confirm_payment_intent(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.payment_intent(sim.state, sim.intents.confirm(path["id"], p, req), view)


# -- webhook endpoints (Stripe's own API for them; the simulator extras are under /_sim/webhook_endpoints) -------
_ENDPOINT_FIELDS = ("url", "api_version", "enabled_events")


def _endpoint_fields(p: Params) -> Params:
    fields = {name: p[name] for name in _ENDPOINT_FIELDS if name in p}
    if isinstance(fields.get("enabled_events"), str):
        fields["enabled_events"] = [fields["enabled_events"]]
    return fields


def _endpoint_json(sim: Simulator, endpoint_id: str, with_secret: bool = False) -> Obj:
    endpoint = sim.outbox.endpoint(endpoint_id)
    if endpoint is None:
        raise missing("webhook_endpoint", endpoint_id)
    obj = endpoint.as_json()
    if not with_secret:
        obj.pop("secret")
    return obj


def create_webhook_endpoint(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    """`url`, `enabled_events[]` (required, as in Stripe) and `api_version`; the answer carries the `secret`."""
    fields = _endpoint_fields(p)
    for name in ("url", "enabled_events"):
        if not fields.get(name):
            raise invalid_request(f"Missing required param: {name}.", code="parameter_missing", param=name)
    try:
        endpoint = sim.add_webhook_endpoint(**fields)
    except ValueError as exc:
        raise invalid_request(str(exc)) from None
    return _endpoint_json(sim, endpoint.id, with_secret=True)


def update_webhook_endpoint(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    _endpoint_json(sim, path["id"])
    try:
        sim.update_webhook_endpoint(path["id"], **_endpoint_fields(p))
    except ValueError as exc:
        raise invalid_request(str(exc)) from None
    return _endpoint_json(sim, path["id"])


def delete_webhook_endpoint(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    _endpoint_json(sim, path["id"])
    sim.delete_webhook_endpoint(path["id"])
    return {"id": path["id"], "object": "webhook_endpoint", "deleted": True}
