"""The operator's actions (POST, `write` scope, CSRF-checked by the access middleware for sessions): commands on a
case, decided by the customer's home on its shard and recorded there as events, and the replay of a quarantined
delivery. Each is also written to the audit trail. Answers redirect back to the page (post/redirect/get)."""

from __future__ import annotations

import re
import secrets
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from actors.domain.operator import ACTIONS
from gateway.auth import principal_of, tenant_of
from gateway.dashboard import queries
from gateway.dashboard.pages import html
from gateway.dispatch import DispatchUnavailable
from gateway.problems import ProblemError

_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


async def _form(request: Request) -> dict[str, str]:
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    return {k: v[0] for k, v in fields.items()}


def _back(path: str, **result: str) -> Response:
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in result.items())
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)


@html
async def case_action(request: Request) -> Response:
    """Retry now, pause / resume dunning, close, resend the last email: one command to the customer's home. The
    form's request id makes a double submit one command."""
    customer_id, invoice_id = request.path_params["customer_id"], request.path_params["invoice_id"]
    action = request.path_params["action"]
    if action not in ACTIONS:
        raise ProblemError(404, "not-found", "Not Found", f"no action {action!r}; one of {', '.join(ACTIONS)}")
    tenant, principal = tenant_of(request), principal_of(request)
    async with request.app.state.platform.db.connection() as conn:
        if await queries.checkpoint(conn, tenant, customer_id) is None:
            raise ProblemError(404, "not-found", "Not Found", f"no customer {customer_id!r} in this tenant")
    given = (await _form(request)).get("request_id", "")
    request_id = given if _REQUEST_ID.match(given) else secrets.token_urlsafe(16)
    command = {"action": action, "invoice_id": invoice_id, "request_id": request_id, "principal": principal.label}
    try:
        outcome = await request.app.state.platform.dispatcher.operator_command(tenant, customer_id, command)
    except DispatchUnavailable as exc:
        raise ProblemError(503, "unavailable", "Service Unavailable", f"try again: {exc}") from None
    await request.app.state.access.audit(principal, tenant, f"case.{action}", target=f"{customer_id}/{invoice_id}",
                                         after={"request_id": request_id, "outcome": outcome})
    request.scope["state"]["audited"] = True
    status, _, why = outcome.partition(": ")
    return _back(f"/dashboard/customers/{quote(customer_id, safe='')}",
                 **{"done" if status == "done" else "refused": f"{action.replace('_', ' ')}: {why}"})


@html
async def replay(request: Request) -> Response:
    """Re-parse one quarantined delivery; when it now parses, hand it to its customer's home at once."""
    tenant, principal = tenant_of(request), principal_of(request)
    delivery_id = int(request.path_params["delivery_id"])
    platform = request.app.state.platform
    async with platform.db.transaction() as conn:
        outcome, item = await queries.replay_delivery(conn, tenant, delivery_id)
    if item is not None:
        platform.dispatcher.submit(item["tenant_id"], item["delivery_id"], item["customer_id"], item["events"])
    await request.app.state.access.audit(principal, tenant, "delivery.replayed", target=str(delivery_id),
                                         after={"outcome": outcome})
    request.scope["state"]["audited"] = True
    return _back("/dashboard/deliveries", result=f"delivery {delivery_id}: {outcome}")
