"""The Stripe API's reads (GET) a recovery platform makes: retrieve and list, in the request's view.

Lists are newest first with `limit` (default 10, at most 100) and `starting_after`, and filter like Stripe's
(`GET /v1/charges?customer=…&payment_intent=…`, `GET /v1/invoice_payments?invoice=…`). Unknown filter values
give an empty list, not a 404. `simulator.api` counts every read in `Simulator.api_reads`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from simulator import render
from simulator.core import Simulator
from simulator.errors import missing
from simulator.events import RequestRef
from simulator.forms import integer, truthy
from simulator.versions import View

Params = dict[str, Any]
Path = dict[str, str]
Obj = dict[str, Any]


def page(items: Iterable[Obj], p: Params, url: str) -> Obj:
    """A Stripe list: newest first, `limit` and `starting_after` applied to `items` (given oldest first)."""
    newest = list(items)[::-1]
    after = p.get("starting_after")
    if after:
        ids = [item["id"] for item in newest]
        newest = newest[ids.index(after) + 1 :] if after in ids else []
    limit = max(1, min(integer(p.get("limit") or 10, "limit"), 100))
    return {"object": "list", "url": url, "has_more": len(newest) > limit, "data": newest[:limit]}


def _matches(p: Params, **fields: str | None) -> bool:
    """Whether every filter given in `p` (among `fields`' names) equals the object's value."""
    return all(p.get(name) in (None, "", value) for name, value in fields.items())


# -- customers and cards ---------------------------------------------------------------------------------------
def customer(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.customer(sim.state, sim.billing.customer(path["id"]), view)


def sources(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    c = sim.billing.customer(path["customer"])
    cards = [render.card(pm) for pm in sim.state.payment_methods.values() if pm.source and pm.customer == c.id]
    return page(cards, p, f"/v1/customers/{c.id}/sources")


def source(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.card(sim.billing.source(path["customer"], path["id"]))


def payment_method(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.payment_method(sim.billing.payment_method(path["id"]))


def payment_methods(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    """`GET /v1/payment_methods?customer=…` and `GET /v1/customers/{customer}/payment_methods` (PaymentMethods
    only: card sources are listed under `/sources`)."""
    customer_id = path.get("customer") or p.get("customer")
    if path.get("customer"):
        sim.billing.customer(customer_id or "")
    found = [
        render.payment_method(pm)
        for pm in sim.state.payment_methods.values()
        if not pm.source and pm.customer is not None and (not customer_id or pm.customer == customer_id)
    ]
    return page(found, p, f"/v1/customers/{customer_id}/payment_methods" if customer_id else "/v1/payment_methods")


def setup_intent(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.setup_intent(sim.billing.setup_intent(path["id"]))


# -- billing ---------------------------------------------------------------------------------------------------
def subscription(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.subscription(sim.billing.subscription(path["id"]), view)


def subscriptions(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    subs = sim.state.subscriptions.values()
    shown = [
        render.subscription(s, view)
        for s in subs
        if _matches(p, customer=s.customer, status=s.status) and (p.get("status") or s.status != "canceled")
    ]
    return page(shown, p, "/v1/subscriptions")


def invoice(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.invoice(sim.state, sim.billing.invoice(path["id"]), view)


def invoices(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    shown = [
        render.invoice(sim.state, inv, view)
        for inv in sim.state.invoices.values()
        if _matches(p, customer=inv.customer, subscription=inv.subscription, status=inv.status)
    ]
    return page(shown, p, "/v1/invoices")


def invoice_item(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return render.invoice_item(sim.billing.invoice_item(path["id"]), view)


def invoice_items(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    """`?customer=`, `?invoice=`, `?pending=true` (not yet on an invoice) or `pending=false`."""
    pending = p.get("pending")
    shown = [
        render.invoice_item(item, view)
        for item in sim.state.invoice_items.values()
        if _matches(p, customer=item.customer, invoice=item.invoice)
        and (pending in (None, "") or (item.invoice is None) == truthy(pending))
    ]
    return page(shown, p, "/v1/invoiceitems")


def invoice_payments(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    """`?invoice=in_…` and/or `payment[type]=payment_intent&payment[payment_intent]=pi_…`."""
    wanted = (p.get("payment") or {}).get("payment_intent")
    shown = [
        payment
        for inv in sim.state.invoices.values()
        if _matches(p, invoice=inv.id)
        for payment in render.invoice_payments(inv)
        if wanted in (None, "", payment["payment"]["payment_intent"])
    ]
    return page(shown, p, "/v1/invoice_payments")


def invoice_payment(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    pi = sim.state.payment_intents.get("pi_" + path["id"].removeprefix("inpay_"))
    inv = sim.state.invoices.get(pi.invoice or "") if pi else None
    if inv is None:
        raise missing("invoice_payment", path["id"])
    return render.invoice_payments(inv)[0]


# -- payments --------------------------------------------------------------------------------------------------
def payment_intent(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    pi = sim.state.payment_intents.get(path["id"])
    if pi is None:
        raise missing("payment_intent", path["id"])
    return render.payment_intent(sim.state, pi, view)


def payment_intents(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    shown = [
        render.payment_intent(sim.state, pi, view)
        for pi in sim.state.payment_intents.values()
        if _matches(p, customer=pi.customer)
    ]
    return page(shown, p, "/v1/payment_intents")


def charge(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    ch = sim.state.charges.get(path["id"])
    if ch is None:
        raise missing("charge", path["id"])
    return render.charge(sim.state, ch, view)


def charges(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    shown = [
        render.charge(sim.state, ch, view)
        for ch in sim.state.charges.values()
        if _matches(p, customer=ch.customer, payment_intent=ch.payment_intent)
    ]
    return page(shown, p, "/v1/charges")


# -- events ----------------------------------------------------------------------------------------------------
def event(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    """Events as recorded, in the account's version (like Stripe's, whatever the request's version)."""
    found = next((e for e in sim.events if e["id"] == path["id"]), None)
    if found is None:
        raise missing("event", path["id"])
    return found


def events(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    kind = p.get("type")
    return page((e for e in sim.events if kind in (None, e["type"])), p, "/v1/events")



# -- webhook endpoints -----------------------------------------------------------------------------------------
def _endpoint(endpoint: Any) -> Obj:
    obj: Obj = endpoint.as_json()
    obj.pop("secret")  # Stripe shows an endpoint's secret only when it is created
    return obj


def webhook_endpoint(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    endpoint = sim.outbox.endpoint(path["id"])
    if endpoint is None:
        raise missing("webhook_endpoint", path["id"])
    return _endpoint(endpoint)


def webhook_endpoints(sim: Simulator, p: Params, path: Path, req: RequestRef, view: View) -> Obj:
    return page((_endpoint(ep) for ep in sim.outbox.endpoints()), p, "/v1/webhook_endpoints")
