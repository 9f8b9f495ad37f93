"""Stripe's own CLI trigger recipes (`stripe trigger invoice.payment_failed`, `stripe trigger charge.failed`) replayed
unchanged against the simulator through the official SDK: `${name:field}` references resolved from earlier answers,
`expected_error_type` checked, and the webhooks each recipe causes received (signatures verified) in the endpoint's
API version. Also the pieces the recipes rely on: pending invoice items by version, one-off PaymentIntents (success,
decline, SCA on and off session, confirm)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import stripe

from simulator.core import SimulatorSettings
from simulator.server import SimulatorServer
from tests.support.webhook_hooks import Hooks, serve_hooks

SAMPLES = Path(__file__).parents[1] / "unit" / "fixtures" / "stripe" / "samples"
SECRET = "whsec_cli_recipes_test_secret"
CLASSIC, LEGACY, DAHLIA = "2017-08-15", "2020-08-27", "2026-06-24.dahlia"
VERSIONS = (CLASSIC, LEGACY, DAHLIA)
CLI = "(created by Stripe CLI)"
REF = re.compile(r"\$\{([^:}]+):([^}]+)\}")

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def hooks() -> Iterator[Hooks]:
    with serve_hooks(SECRET) as h:
        yield h


@pytest.fixture
def server(hooks: Hooks) -> Iterator[SimulatorServer]:
    hooks.got.clear()
    # cards without a forced outcome (pm_card_visa) always succeed, as in Stripe test mode
    with SimulatorServer(SimulatorSettings(seed=31, model="always_succeed", auto_deliver=False)) as s:
        for version in VERSIONS:  # one endpoint per version, named after it
            s.sim.add_webhook_endpoint(hooks.url(version), api_version=version, secret=SECRET)
        yield s


def client(server: SimulatorServer, version: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        server.api_key, base_addresses={"api": server.url}, max_network_retries=0, stripe_version=version
    )


# -- the recipe runner -----------------------------------------------------------------------------------------
def fixtures(name: str) -> list[Obj]:
    doc = orjson.loads((SAMPLES / f"{name}.json").read_bytes())
    assert doc["_source"]["repo"] == "stripe/stripe-cli"
    return doc["recipe"]["fixtures"]  # type: ignore[no-any-return]


def lookup(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


def resolve(value: Any, results: dict[str, Obj]) -> Any:
    """`${name:field.path}` → that field of the earlier fixture `name`'s answer, as the CLI does."""
    if isinstance(value, str):
        return REF.sub(lambda m: str(lookup(results[m.group(1)], m.group(2))), value)
    if isinstance(value, dict):
        return {key: resolve(item, results) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, results) for item in value]
    return value


def run_recipe(c: stripe.StripeClient, name: str) -> dict[str, Obj]:
    """Each fixture through `StripeClient.raw_request`; a fixture with `expected_error_type` must fail with exactly
    that type (its result is then the error), every other one must succeed."""
    results: dict[str, Obj] = {}
    for fx in fixtures(name):
        path, params = resolve(fx["path"], results), resolve(fx.get("params") or {}, results)
        assert "${" not in path, path
        expected = fx.get("expected_error_type")
        try:
            response = c.raw_request(fx["method"], path, **params)
        except stripe.StripeError as exc:
            assert expected is not None, f"{fx['name']}: unexpected {exc!r}"
            body: Any = exc.json_body
            assert body is not None and body["error"]["type"] == expected, body
            results[fx["name"]] = body["error"]
            continue
        assert expected is None, f"{fx['name']}: expected a {expected}, got {response.code}"
        results[fx["name"]] = response.data
    return results


def no_invoice(obj: Obj, version: str) -> None:
    """A one-off payment: `invoice` is null where the version has the field (before basil), absent from basil."""
    pre_basil = version < "2025-03-31"
    assert ("invoice" in obj) is pre_basil and obj.get("invoice") is None, obj.get("invoice", "absent")


def charges_of(intent: Obj, version: str) -> list[str]:
    """The PaymentIntent's charges: the embedded list before 2022-11-15, `latest_charge` from then on."""
    if version < "2022-11-15":
        assert "latest_charge" not in intent
        return [c["id"] for c in intent["charges"]["data"]]
    assert "charges" not in intent
    return [intent["latest_charge"]] if intent["latest_charge"] else []


# -- stripe trigger invoice.payment_failed ---------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_stripe_trigger_invoice_payment_failed(server: SimulatorServer, hooks: Hooks, version: str) -> None:
    results = run_recipe(client(server, version), "stripe_cli_trigger_invoice_payment_failed")
    server.flush()
    customer, pm, invoice, error = (results[n] for n in ("customer", "payment_method", "invoice", "invoice_pay"))
    assert pm["id"].startswith("pm_") and pm["id"] != "pm_card_chargeCustomerFail" and pm["customer"] == customer["id"]
    assert results["invoiceitem"]["invoice"] is None  # pending until the invoice takes it in
    assert invoice["amount_due"] == 2000 and invoice["description"] == CLI  # built from the pending item
    assert (error["code"], error["decline_code"]) == ("card_declined", "generic_decline")
    charge_id, intent_id = error["charge"], error["payment_intent"]["id"]

    assert hooks.types(version) == [
        "customer.created",
        "payment_method.attached",
        "invoiceitem.created",
        "invoice.created",
        "invoice.finalized",
        "charge.failed",
        "payment_intent.payment_failed",
        "invoice.payment_failed",
    ]
    failed = hooks.one(version, "invoice.payment_failed", version=version)
    assert (failed["id"], failed["amount_due"], failed["attempted"]) == (invoice["id"], 2000, True)
    charge = hooks.one(version, "charge.failed", version=version)
    assert (charge["id"], charge["amount"], charge["status"], charge["failure_code"]) == (
        charge_id,
        2000,
        "failed",
        "card_declined",
    )
    assert (charge["customer"], charge["payment_method"], charge["payment_intent"]) == (
        customer["id"],
        pm["id"],
        intent_id,
    )
    intent = hooks.one(version, "payment_intent.payment_failed", version=version)
    assert intent["id"] == intent_id and intent["last_payment_error"]["charge"] == charge_id
    assert charges_of(intent, version) == [charge_id]
    if version == CLASSIC:
        assert failed["charge"] == charge_id and "status" not in failed and "payment_intent" not in failed
    elif version == LEGACY:
        assert (failed["charge"], failed["payment_intent"], failed["status"]) == (charge_id, intent_id, "open")
    else:
        assert "charge" not in failed and "payment_intent" not in failed and failed["status"] == "open"
    for obj in (charge, intent):
        if version == DAHLIA:
            assert "invoice" not in obj
        else:
            assert obj["invoice"] == invoice["id"]
    entries = server.sim.ledger_entries(invoice["id"])
    assert [(e.charge, e.payment_intent, e.outcome, e.amount, e.source) for e in entries] == [
        (charge_id, intent_id, "declined", 2000, "api")
    ]


# -- stripe trigger charge.failed ------------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_stripe_trigger_charge_failed(server: SimulatorServer, hooks: Hooks, version: str) -> None:
    results = run_recipe(client(server, version), "stripe_cli_trigger_charge_failed")
    server.flush()
    error = results["payment_intent"]
    assert (error["code"], error["decline_code"]) == ("card_declined", "generic_decline")
    charge_id, intent_id = error["charge"], error["payment_intent"]["id"]
    assert charge_id.startswith("ch_") and error["payment_intent"]["status"] == "requires_payment_method"

    assert hooks.types(version) == ["payment_intent.created", "charge.failed", "payment_intent.payment_failed"]
    created = hooks.one(version, "payment_intent.created", version=version)
    assert (created["id"], created["status"], created["amount"]) == (intent_id, "requires_confirmation", 100)
    cloned = created["payment_method"]
    assert cloned.startswith("pm_") and cloned != "pm_card_visa_chargeDeclined"
    charge = hooks.one(version, "charge.failed", version=version)
    assert (charge["id"], charge["amount"], charge["currency"], charge["status"]) == (charge_id, 100, "usd", "failed")
    assert (charge["customer"], charge["payment_intent"], charge["payment_method"]) == (None, intent_id, cloned)
    assert charge["description"] == CLI and charge["outcome"]["type"] == "issuer_declined"
    intent = hooks.one(version, "payment_intent.payment_failed", version=version)
    assert (intent["id"], intent["status"], intent["description"]) == (intent_id, "requires_payment_method", CLI)
    assert intent["last_payment_error"]["charge"] == charge_id
    assert intent["last_payment_error"]["decline_code"] == "generic_decline"
    assert charges_of(intent, version) == [charge_id]
    for obj in (created, charge, intent):
        no_invoice(obj, version)
    entries = server.sim.ledger_entries(payment_intent=intent_id)
    assert [(e.invoice, e.charge, e.outcome, e.amount, e.attempt, e.source) for e in entries] == [
        ("", charge_id, "declined", 100, 1, "api")
    ]
    assert server.sim.double_charges() == {}


# -- what the recipes rely on ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("version", "included"), [(CLASSIC, True), (LEGACY, True), (DAHLIA, False)])
def test_pending_invoice_items_are_included_by_default_only_before_2022_08_01(
    server: SimulatorServer, version: str, included: bool
) -> None:
    c = client(server, version)
    customer = c.v1.customers.create(params={"description": CLI})
    item = c.v1.invoice_items.create(params={"customer": customer.id, "amount": 1500, "currency": "usd"})
    invoice = c.v1.invoices.create(params={"customer": customer.id})
    assert invoice.amount_due == (1500 if included else 0)
    assert c.v1.invoice_items.retrieve(item.id).invoice == (invoice.id if included else None)
    pending = c.v1.invoice_items.list(params={"customer": customer.id, "pending": True})
    assert [i.id for i in pending.data] == ([] if included else [item.id])
    # explicit behaviors win over the version's default; the simulator's `amount` extra adds to the items
    def with_amount(behavior: str) -> Any:  # `amount` is the simulator's extra, not in the SDK's types
        return {"customer": customer.id, "amount": 300, "pending_invoice_items_behavior": behavior}

    explicit = c.v1.invoices.create(params=with_amount("exclude"))
    assert explicit.amount_due == 300
    if not included:
        taken = c.v1.invoices.create(params=with_amount("include"))
        assert taken.amount_due == 1800 and c.v1.invoice_items.retrieve(item.id).invoice == taken.id


def test_an_invoice_item_added_to_a_draft_raises_its_amount_and_a_finalized_invoice_refuses_it(
    server: SimulatorServer,
) -> None:
    c = client(server, DAHLIA)
    customer = c.v1.customers.create()
    draft = c.v1.invoices.create(params={"customer": customer.id})
    c.v1.invoice_items.create(params={"customer": customer.id, "amount": 400, "currency": "usd", "invoice": draft.id})
    per_unit: Any = {"customer": customer.id, "unit_amount": 250, "quantity": 2, "currency": "usd", "invoice": draft.id}
    c.v1.invoice_items.create(params=per_unit)
    assert c.v1.invoices.retrieve(draft.id).amount_due == 900
    c.v1.invoices.finalize_invoice(draft.id)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        c.v1.invoice_items.create(params={"customer": customer.id, "amount": 1, "currency": "usd", "invoice": draft.id})
    assert refused.value.code == "invoice_not_editable"
    assert c.v1.invoices.retrieve(draft.id).amount_due == 900


@pytest.mark.parametrize("version", [LEGACY, DAHLIA])
def test_a_one_off_payment_intent_that_succeeds(server: SimulatorServer, hooks: Hooks, version: str) -> None:
    c = client(server, version)
    customer = c.v1.customers.create()
    intent = c.v1.payment_intents.create(
        params={"amount": 700, "currency": "usd", "customer": customer.id, "payment_method": "pm_card_visa",
                "confirm": True, "setup_future_usage": "off_session"}
    )
    server.flush()
    assert intent.status == "succeeded" and intent.amount_received == 700
    assert hooks.types(version) == [
        "customer.created",
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
        "payment_method.attached",  # setup_future_usage with a customer saves the card
    ]
    charge = hooks.one(version, "charge.succeeded", version=version)
    assert (charge["payment_intent"], charge["customer"], charge["paid"]) == (intent.id, customer.id, True)
    no_invoice(charge, version)
    assert charges_of(hooks.one(version, "payment_intent.succeeded", version=version), version) == [charge["id"]]
    (entry,) = server.sim.ledger_entries(payment_intent=intent.id)
    assert (entry.outcome, entry.charge, entry.customer, entry.invoice) == ("succeeded", charge["id"], customer.id, "")
    with pytest.raises(stripe.InvalidRequestError) as again:
        c.v1.payment_intents.confirm(intent.id)
    assert again.value.code == "payment_intent_unexpected_state"
    assert len(server.sim.ledger_entries(payment_intent=intent.id)) == 1


def test_confirm_declines_then_succeeds_on_a_new_card(server: SimulatorServer, hooks: Hooks) -> None:
    c = client(server, LEGACY)
    intent = c.v1.payment_intents.create(
        params={"amount": 1200, "currency": "eur", "payment_method": "pm_card_chargeDeclinedInsufficientFunds"}
    )
    assert intent.status == "requires_confirmation" and server.sim.ledger_entries(payment_intent=intent.id) == []
    with pytest.raises(stripe.CardError) as declined:
        c.v1.payment_intents.confirm(intent.id)
    assert declined.value.error.decline_code == "insufficient_funds"  # type: ignore[union-attr]
    paid = c.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_visa"})
    assert paid.status == "succeeded"
    server.flush()
    assert hooks.types(LEGACY) == [
        "payment_intent.created",
        "charge.failed",
        "payment_intent.payment_failed",
        "charge.succeeded",
        "payment_intent.succeeded",
    ]
    succeeded = hooks.one(LEGACY, "payment_intent.succeeded", version=LEGACY)
    failed_charge = hooks.one(LEGACY, "charge.failed", version=LEGACY)["id"]
    assert charges_of(succeeded, LEGACY) == [hooks.one(LEGACY, "charge.succeeded", version=LEGACY)["id"], failed_charge]
    entries = server.sim.ledger_entries(payment_intent=intent.id)
    assert [(e.attempt, e.outcome, e.decline_code) for e in entries] == [
        (1, "declined", "insufficient_funds"),
        (2, "succeeded", None),
    ]


def test_authentication_required_fails_off_session_without_a_charge_and_waits_on_session(
    server: SimulatorServer, hooks: Hooks
) -> None:
    c = client(server, DAHLIA)
    customer = c.v1.customers.create()
    params = {"amount": 500, "currency": "usd", "customer": customer.id,
              "payment_method": "pm_card_authenticationRequired", "confirm": True}
    with pytest.raises(stripe.CardError) as off:
        c.v1.payment_intents.create(params={**params, "off_session": True})  # type: ignore[typeddict-item]
    error = off.value.error
    assert (error.code, error.decline_code, error.charge) == ("authentication_required",) * 2 + (None,)  # type: ignore[union-attr]
    on = c.v1.payment_intents.create(params=params)  # type: ignore[arg-type]
    assert on.status == "requires_action" and on.next_action is not None and on.next_action.type == "use_stripe_sdk"
    server.flush()
    assert hooks.types(DAHLIA) == [
        "customer.created",
        "payment_intent.created",
        "payment_intent.payment_failed",
        "payment_intent.created",
        "payment_intent.requires_action",
    ]
    assert server.sim.state.charges == {}
    (entry,) = server.sim.ledger_entries(invoice="")
    assert (entry.charge, entry.outcome, entry.decline_code) == (None, "declined", "authentication_required")


def test_confirming_an_invoice_payment_intent_pays_the_invoice(server: SimulatorServer) -> None:
    c = client(server, LEGACY)
    results = run_recipe(c, "stripe_cli_trigger_invoice_payment_failed")
    customer, invoice = results["customer"]["id"], results["invoice"]["id"]
    card = c.v1.payment_methods.attach("pm_card_visa", params={"customer": customer})
    intent = c.v1.payment_intents.confirm(results["invoice_pay"]["payment_intent"]["id"],
                                          params={"payment_method": card.id})
    assert intent.status == "succeeded"
    assert c.v1.invoices.retrieve(invoice).status == "paid"
    assert [e.outcome for e in server.sim.ledger_entries(invoice)] == ["declined", "succeeded"]
