"""Stripe as awkward as it is: webhook endpoints in their own API versions, the three shape families, SCA
failures without a charge, the Sources API, SetupIntents and the card updater, and the API reads a recovery
platform makes (counted). Real HTTP both ways, the official `stripe` SDK on the API side, signatures verified."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import stripe

from simulator.core import SimulatorSettings
from simulator.server import SimulatorServer
from tests.support.webhook_hooks import Hooks, serve_hooks

SECRET = "whsec_versions_test_secret"
CLASSIC, LEGACY, DAHLIA = "2017-08-15", "2020-08-27", "2026-06-24.dahlia"
PRICE = {"unit_amount": 900, "currency": "usd", "product": "prod_sim", "recurring": {"interval": "month"}}

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def hooks() -> Iterator[Hooks]:
    with serve_hooks(SECRET) as h:
        yield h


@pytest.fixture
def server(hooks: Hooks) -> Iterator[SimulatorServer]:
    hooks.got.clear()
    settings = SimulatorSettings(seed=23, webhook_url=hooks.url("default"), webhook_secret=SECRET, auto_deliver=False)
    with SimulatorServer(settings) as s:
        yield s


def client(server: SimulatorServer, version: str | None = None) -> stripe.StripeClient:
    return stripe.StripeClient(
        server.api_key, base_addresses={"api": server.url}, max_network_retries=0, stripe_version=version
    )


def endpoints(server: SimulatorServer, hooks: Hooks, **options: Any) -> None:
    """One endpoint per version family, named after the version."""
    for version in (CLASSIC, LEGACY, DAHLIA):
        server.sim.add_webhook_endpoint(hooks.url(version), api_version=version, secret=SECRET, **options)


def declined_subscription(c: stripe.StripeClient, card: str = "pm_card_chargeDeclinedInsufficientFunds") -> Obj:
    """A customer whose default card declines, and a subscription whose first invoice therefore failed."""
    customer = c.v1.customers.create(params={"email": "grace@example.test"})
    pm = c.v1.payment_methods.attach(card, params={"customer": customer.id})
    c.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": pm.id}})
    sub = c.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price_data": PRICE}]})  # type: ignore[typeddict-item]
    return {"customer": customer.id, "pm": pm.id, "sub": sub.id, "invoice": str(sub.latest_invoice)}


# -- shapes by version ---------------------------------------------------------------------------------------------
def test_each_endpoint_receives_the_same_events_in_its_own_version(server: SimulatorServer, hooks: Hooks) -> None:
    endpoints(server, hooks)
    ids = declined_subscription(client(server))
    server.flush()
    by_version = {v: hooks.events(v) for v in (CLASSIC, LEGACY, DAHLIA)}
    assert {v: [e["api_version"] for e in evs][:1] for v, evs in by_version.items()} == {
        v: [v] for v in (CLASSIC, LEGACY, DAHLIA)
    }
    assert len({tuple(e["id"] for e in evs) for evs in by_version.values()}) == 1  # same events, same order
    for version in (CLASSIC, LEGACY, DAHLIA):
        assert all(e["pending_webhooks"] == 4 for e in by_version[version])
        assert hooks.of(version, "invoice.payment_failed")[0]["data"]["object"]["id"] == ids["invoice"]


def test_classic_2017_invoices_have_charge_but_no_status_or_payment_intent(
    server: SimulatorServer, hooks: Hooks
) -> None:
    endpoints(server, hooks)
    ids = declined_subscription(client(server))
    server.flush()
    invoice = hooks.one(CLASSIC, "invoice.payment_failed")
    assert invoice["charge"].startswith("ch_") and invoice["subscription"] == ids["sub"]
    flags = (invoice["paid"], invoice["closed"], invoice["forgiven"], invoice["attempted"])
    assert flags == (False, False, False, True)
    assert invoice["attempt_count"] == 1 and invoice["billing"] == "charge_automatically"
    assert "date" in invoice and "created" not in invoice
    for absent in ("status", "payment_intent", "collection_method", "parent", "payments", "auto_advance"):
        assert absent not in invoice, absent
    charge = hooks.one(CLASSIC, "charge.failed")
    assert charge["invoice"] == ids["invoice"] and charge["source"] is None  # a PaymentMethod, not a source
    customer = hooks.one(CLASSIC, "customer.created")
    assert customer["sources"]["object"] == "list" and customer["subscriptions"]["data"] == []
    assert "default_source" in customer and "account_balance" in customer
    sub = hooks.one(CLASSIC, "customer.subscription.created")
    assert "start" in sub and "start_date" not in sub and sub["billing"] == "charge_automatically"


def test_legacy_2020_invoices_have_status_charge_and_payment_intent(server: SimulatorServer, hooks: Hooks) -> None:
    endpoints(server, hooks)
    ids = declined_subscription(client(server))
    server.flush()
    invoice = hooks.one(LEGACY, "invoice.payment_failed")
    assert (invoice["status"], invoice["collection_method"], invoice["paid"]) == ("open", "charge_automatically", False)
    assert invoice["charge"].startswith("ch_") and invoice["payment_intent"].startswith("pi_")
    assert invoice["subscription"] == ids["sub"] and "created" in invoice
    assert "parent" not in invoice and "payments" not in invoice
    assert hooks.one(LEGACY, "charge.failed")["invoice"] == ids["invoice"]
    intent = hooks.one(LEGACY, "payment_intent.payment_failed")
    assert intent["invoice"] == ids["invoice"] and intent["charges"]["data"][0]["id"] == invoice["charge"]
    assert "latest_charge" not in intent  # PaymentIntents embedded `charges` until 2022-11-15
    customer = hooks.one(LEGACY, "customer.created")
    assert "sources" not in customer and "subscriptions" not in customer and "default_source" in customer


def test_dahlia_invoices_nest_the_subscription_and_leave_payments_out(server: SimulatorServer, hooks: Hooks) -> None:
    endpoints(server, hooks)
    ids = declined_subscription(client(server))
    server.flush()
    invoice = hooks.one(DAHLIA, "invoice.payment_failed")
    assert invoice["parent"]["subscription_details"]["subscription"] == ids["sub"]
    for absent in ("charge", "payment_intent", "subscription", "paid", "payments"):
        assert absent not in invoice, absent
    assert "invoice" not in hooks.one(DAHLIA, "charge.failed")
    intent = hooks.one(DAHLIA, "payment_intent.payment_failed")
    assert "invoice" not in intent and intent["latest_charge"].startswith("ch_")
    assert intent["last_payment_error"]["decline_code"] == "insufficient_funds"


def test_the_default_endpoint_can_change_version_at_run_time(server: SimulatorServer, hooks: Hooks) -> None:
    c = client(server)
    c.v1.customers.create()
    answer = httpx.post(f"{server.url}/_sim/webhook_endpoints/we_default", json={"api_version": CLASSIC})
    assert answer.status_code == 200 and answer.json()["api_version"] == CLASSIC
    c.v1.customers.create()
    server.flush()
    first, second = hooks.events("default")
    assert (first["api_version"], second["api_version"]) == (server.sim.settings.api_version, CLASSIC)
    assert "sources" not in first["data"]["object"] and "sources" in second["data"]["object"]
    refused = httpx.post(f"{server.url}/_sim/webhook_endpoints/we_default", json={"api_version": "soon"})
    assert refused.status_code == 400
    assert [e["api_version"] for e in server.sim.events] == [server.sim.settings.api_version] * 2


def test_an_endpoint_created_through_the_stripe_api_signs_with_its_own_secret(
    server: SimulatorServer, hooks: Hooks
) -> None:
    c = client(server)
    endpoint = c.v1.webhook_endpoints.create(
        params={"url": hooks.url("api-made"), "enabled_events": ["customer.created"], "api_version": LEGACY}
    )
    assert endpoint.secret and endpoint.secret.startswith("whsec_") and endpoint.secret != SECRET
    c.v1.customers.create(params={"email": "linus@example.test"})
    server.flush()
    [event] = [orjson.loads(body) for body, _ in hooks.got["api-made"]]
    body, signature = hooks.got["api-made"][0]
    assert stripe.Webhook.construct_event(body.decode(), signature, endpoint.secret).id == event["id"]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body.decode(), signature, SECRET)
    assert (event["type"], event["api_version"]) == ("customer.created", LEGACY)
    assert "secret" not in c.v1.webhook_endpoints.retrieve(endpoint.id)
    c.v1.webhook_endpoints.delete(endpoint.id)
    assert [ep.id for ep in server.sim.webhook_endpoints()] == ["we_default"]


# -- endpoint options ----------------------------------------------------------------------------------------------
def test_enabled_events_leave_out_what_the_endpoint_did_not_subscribe_to(server: SimulatorServer, hooks: Hooks) -> None:
    subset = ["invoice.payment_failed", "invoice.paid", "customer.subscription.updated"]
    server.sim.add_webhook_endpoint(hooks.url("subset"), secret=SECRET, enabled_events=subset)
    declined_subscription(client(server))
    server.flush()
    everything = {e["type"] for e in hooks.events("default")}
    assert {"charge.failed", "payment_intent.payment_failed", "invoice.payment_failed"} <= everything
    assert {e["type"] for e in hooks.events("subset")} == {"invoice.payment_failed"}
    assert hooks.of("subset", "invoice.payment_failed")[0]["pending_webhooks"] == 2
    assert hooks.of("default", "charge.failed")[0]["pending_webhooks"] == 1


def test_the_expand_option_sends_invoice_charge_and_payment_intent_as_objects(
    server: SimulatorServer, hooks: Hooks
) -> None:
    endpoints(server, hooks, expand=["charge", "payment_intent"])
    declined_subscription(client(server))
    server.flush()
    legacy = hooks.one(LEGACY, "invoice.payment_failed")
    assert legacy["charge"]["object"] == "charge" and legacy["charge"]["failure_code"] == "card_declined"
    assert legacy["payment_intent"]["object"] == "payment_intent"
    assert legacy["payment_intent"]["last_payment_error"]["decline_code"] == "insufficient_funds"
    classic = hooks.one(CLASSIC, "invoice.payment_failed")
    assert classic["charge"]["object"] == "charge" and "payment_intent" not in classic
    assert "charge" not in hooks.one(DAHLIA, "invoice.payment_failed")  # basil has nothing to expand
    assert isinstance(server.sim.events[-1]["data"]["object"].get("customer"), str)  # the record stays plain


def test_omit_previous_attributes_drops_them_from_updates(server: SimulatorServer, hooks: Hooks) -> None:
    server.sim.add_webhook_endpoint(hooks.url("awkward"), secret=SECRET, omit_previous_attributes=True)
    declined_subscription(client(server))
    server.flush()
    plain = hooks.of("default", "customer.updated")[0]["data"]
    awkward = hooks.of("awkward", "customer.updated")[0]["data"]
    assert plain["previous_attributes"] == {"invoice_settings": {"default_payment_method": None}}
    assert "previous_attributes" not in awkward and awkward["object"] == plain["object"]


# -- SCA -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["test_card", "sim_force", "control"])
def test_authentication_required_makes_no_charge(server: SimulatorServer, hooks: Hooks, how: str) -> None:
    endpoints(server, hooks)
    c = client(server)
    customer = c.v1.customers.create()
    if how == "test_card":
        pm = c.v1.payment_methods.attach("pm_card_authenticationRequired", params={"customer": customer.id})
    else:
        metadata = {"sim_force": "sca"} if how == "sim_force" else {}
        params = {"type": "card", "card": {"token": "tok_visa"}, "metadata": metadata}
        created = c.v1.payment_methods.create(params=params)  # type: ignore[arg-type]
        pm = c.v1.payment_methods.attach(created.id, params={"customer": customer.id})
        if how == "control":
            assert httpx.post(f"{server.url}/_sim/cards/{pm.id}/force", json={"outcome": "sca"}).status_code == 200
    invoice = c.v1.invoices.create(params={"customer": customer.id, "amount": 1200})  # type: ignore[typeddict-unknown-key]
    with pytest.raises(stripe.CardError) as caught:
        c.v1.invoices.pay(invoice.id, params={"payment_method": pm.id}, options={"idempotency_key": "sca-1"})
    error = caught.value.error
    assert error is not None and caught.value.http_status == 402
    assert (error.type, error.code) == ("card_error", "authentication_required")
    assert error.decline_code == "authentication_required"
    assert error.charge is None and error.payment_intent is not None
    server.flush()
    types = {e["type"] for e in hooks.events(LEGACY)}
    assert {"payment_intent.payment_failed", "invoice.payment_failed", "invoice.payment_action_required"} <= types
    assert "charge.failed" not in types and not any(t.startswith("charge.") for t in types)
    assert hooks.one(LEGACY, "invoice.payment_failed")["charge"] is None
    assert hooks.one(CLASSIC, "invoice.payment_failed")["charge"] is None
    intent = hooks.one(DAHLIA, "payment_intent.payment_failed")
    assert intent["status"] == "requires_payment_method" and intent["latest_charge"] is None
    assert intent["last_payment_error"]["code"] == "authentication_required"
    assert "charge" not in intent["last_payment_error"]
    assert server.sim.state.charges == {}
    [entry] = server.sim.ledger_entries(invoice.id)
    assert (entry.charge, entry.outcome, entry.decline_code) == (None, "declined", "authentication_required")
    assert server.sim.double_charges() == {}


# -- sources, setup intents, the card updater ----------------------------------------------------------------------
def test_sources_api_default_source_and_expiry_updates(server: SimulatorServer, hooks: Hooks) -> None:
    endpoints(server, hooks)
    c = client(server)
    customer = c.v1.customers.create()
    first = c.v1.customers.payment_sources.create(customer.id, params={"source": "tok_visa"})
    second = c.v1.customers.payment_sources.create(customer.id, params={"source": "tok_mastercard"})
    assert first.id.startswith("card_") and (first.object, first["brand"]) == ("card", "Visa")
    assert second["brand"] == "MasterCard"
    c.v1.customers.update(customer.id, params={"default_source": second.id})
    old_year = second["exp_year"]
    expiry = {"exp_month": "1", "exp_year": str(old_year + 2)}
    c.v1.customers.payment_sources.update(customer.id, second.id, params=expiry)  # type: ignore[arg-type]
    server.flush()
    created = [e["data"]["object"]["id"] for e in hooks.of(LEGACY, "customer.source.created")]
    assert created == [first.id, second.id]
    updates = [e["data"]["previous_attributes"] for e in hooks.of(LEGACY, "customer.updated")]
    assert updates == [{"default_source": None}, {"default_source": first.id}]
    changed = hooks.of(LEGACY, "customer.source.updated")[0]["data"]
    assert changed["previous_attributes"] == {"exp_month": 12, "exp_year": old_year}
    assert changed["object"]["exp_year"] == old_year + 2
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.customers.payment_sources.create(customer.id, params={"source": "tok_nonsense"})
    classic = client(server, CLASSIC).v1.customers.retrieve(customer.id)
    assert [s.id for s in classic["sources"]["data"]] == [first.id, second.id]
    assert "sources" not in client(server, LEGACY).v1.customers.retrieve(customer.id)


def test_a_default_source_pays_and_shows_on_the_charge(server: SimulatorServer, hooks: Hooks) -> None:
    endpoints(server, hooks)
    c = client(server)
    customer = c.v1.customers.create(params={"source": "tok_visa"})  # type: ignore[typeddict-unknown-key]
    card = str(c.v1.customers.retrieve(customer.id).default_source)
    invoice = c.v1.invoices.create(params={"customer": customer.id, "amount": 700})  # type: ignore[typeddict-unknown-key]
    assert c.v1.invoices.pay(invoice.id).status == "paid"
    server.flush()
    charge = hooks.one(CLASSIC, "charge.succeeded")
    assert charge["payment_method"] == card and charge["source"]["id"] == card
    assert charge["source"]["object"] == "card" and charge["source"]["brand"] == "Visa"
    assert server.sim.ledger_entries(invoice.id)[0].payment_method == card


def test_the_payment_method_order_is_stripes(server: SimulatorServer) -> None:
    c = client(server)
    customer = c.v1.customers.create(params={"source": "tok_visa"})  # type: ignore[typeddict-unknown-key]
    card = str(c.v1.customers.retrieve(customer.id).default_source)
    declining = c.v1.payment_methods.attach("pm_card_chargeDeclined", params={"customer": customer.id})
    c.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": declining.id}})
    invoice = c.v1.invoices.create(params={"customer": customer.id, "amount": 500})  # type: ignore[typeddict-unknown-key]
    with pytest.raises(stripe.CardError):  # invoice_settings.default_payment_method beats default_source
        c.v1.invoices.pay(invoice.id)
    assert c.v1.invoices.pay(invoice.id, params={"payment_method": card}).status == "paid"  # explicit beats all
    sub = c.v1.subscriptions.create(
        params={"customer": customer.id, "default_source": card, "items": [{"price_data": PRICE}]}  # type: ignore[typeddict-item]
    )
    assert sub.status == "active"  # the subscription's default_source beats the customer's default PM
    used = [e.payment_method for e in server.sim.ledger_entries() if e.outcome == "succeeded"]
    assert used == [card, card]


def test_a_setup_intent_saves_a_card_off_session(server: SimulatorServer, hooks: Hooks) -> None:
    c = client(server)
    customer = c.v1.customers.create()
    si = c.v1.setup_intents.create(
        params={"customer": customer.id, "payment_method": "pm_card_visa", "confirm": True, "usage": "off_session"}
    )
    assert si.status == "succeeded" and si.payment_method and str(si.payment_method).startswith("pm_")
    server.flush()
    types = [e["type"] for e in hooks.events("default")]
    assert types[-3:] == ["setup_intent.created", "payment_method.attached", "setup_intent.succeeded"]
    saved = hooks.one("default", "setup_intent.succeeded")
    assert (saved["customer"], saved["payment_method"]) == (customer.id, si.payment_method)
    assert saved["status"] == "succeeded"
    assert c.v1.payment_methods.retrieve(str(si.payment_method)).customer == customer.id
    assert c.v1.setup_intents.retrieve(si.id).status == "succeeded"


def test_the_card_updater_refreshes_a_card_and_makes_it_chargeable(server: SimulatorServer, hooks: Hooks) -> None:
    c = client(server)
    ids = declined_subscription(c, "pm_card_chargeDeclinedExpiredCard")
    old = c.v1.payment_methods.retrieve(ids["pm"]).card
    assert old is not None
    answer = httpx.post(f"{server.url}/_sim/cards/{ids['pm']}/update", json={"exp_year": old.exp_year + 4})
    assert answer.status_code == 200
    server.flush()
    event = hooks.of("default", "payment_method.automatically_updated")[0]["data"]
    assert event["object"]["id"] == ids["pm"] and event["object"]["card"]["exp_year"] == old.exp_year + 4
    assert event["previous_attributes"] == {"card": {"exp_year": old.exp_year}}
    assert c.v1.invoices.pay(ids["invoice"]).status == "paid"
    server.sim.card_updater(ids["pm"], exp_month=3, outcome="expired_card")
    assert server.sim.state.payment_methods[ids["pm"]].forced == "expired_card"


# -- API reads -----------------------------------------------------------------------------------------------------
def test_reads_answer_in_the_request_version_and_are_counted(server: SimulatorServer) -> None:
    c = client(server)
    ids = declined_subscription(c)
    pi_id = str(c.v1.invoices.retrieve(ids["invoice"], options={"stripe_version": LEGACY})["payment_intent"])
    server.sim.api_reads.clear()
    intent = c.v1.payment_intents.retrieve(pi_id, params={"expand": ["latest_charge", "payment_method"]})
    charge = intent.latest_charge
    assert isinstance(charge, stripe.Charge) and charge.outcome is not None
    assert (charge.failure_code, charge.outcome.network_decline_code) == ("card_declined", "51")
    assert isinstance(intent.payment_method, stripe.PaymentMethod) and intent.payment_method.id == ids["pm"]
    assert "invoice" not in intent
    legacy = c.v1.payment_intents.retrieve(pi_id, options={"stripe_version": LEGACY})
    assert legacy["invoice"] == ids["invoice"] and legacy["charges"]["data"][0]["id"] == charge.id
    with pytest.raises(stripe.InvalidRequestError):  # no latest_charge to expand before 2022-11-15
        c.v1.payment_intents.retrieve(pi_id, params={"expand": ["latest_charge"]}, options={"stripe_version": LEGACY})
    assert c.v1.charges.retrieve(charge.id).payment_intent == pi_id
    listed = c.v1.charges.list(params={"customer": ids["customer"], "payment_intent": pi_id})
    assert [ch.id for ch in listed.data] == [charge.id]
    assert c.v1.charges.list(params={"customer": "cus_nobody"}).data == []
    reads = server.sim.api_reads
    assert reads[("GET", "/v1/payment_intents/{id}")] == 3
    assert reads[("GET", "/v1/charges/{id}")] == 1 and reads[("GET", "/v1/charges")] == 2
    assert server.sim.api_reads_by_path[("GET", f"/v1/payment_intents/{pi_id}")] == 3


def test_invoice_payments_and_the_includable_payments_field(server: SimulatorServer) -> None:
    c = client(server)
    ids = declined_subscription(c)
    payments = c.v1.invoice_payments.list(params={"invoice": ids["invoice"]})
    [payment] = payments.data
    assert (payment.payment.type, payment.status, payment.invoice) == ("payment_intent", "open", ids["invoice"])
    pi_id = str(payment.payment.payment_intent)
    assert pi_id.startswith("pi_")
    assert c.v1.invoice_payments.retrieve(payment.id).id == payment.id
    assert "payments" not in c.v1.invoices.retrieve(ids["invoice"])
    expanded = c.v1.invoices.retrieve(ids["invoice"], params={"expand": ["payments"]})
    assert expanded["payments"]["data"][0]["payment"]["payment_intent"] == pi_id
    deep = c.v1.invoices.retrieve(ids["invoice"], params={"expand": ["payments.data.payment.payment_intent"]})
    assert deep["payments"]["data"][0]["payment"]["payment_intent"]["id"] == pi_id
    with pytest.raises(stripe.InvalidRequestError):  # `payments` is a basil field
        c.v1.invoices.retrieve(ids["invoice"], params={"expand": ["payments"]}, options={"stripe_version": LEGACY})
    assert server.sim.api_reads[("GET", "/v1/invoice_payments")] == 1


def test_customer_and_subscription_reads_carry_what_dunning_needs(server: SimulatorServer) -> None:
    c = client(server)
    ids = declined_subscription(c)
    customer = c.v1.customers.retrieve(ids["customer"])
    assert customer.created > 0 and customer.default_source is None
    assert customer.invoice_settings is not None and customer.invoice_settings.default_payment_method == ids["pm"]
    sub = c.v1.subscriptions.retrieve(ids["sub"])
    assert sub.start_date == sub.created > 0 and sub.status == "incomplete"
    classic = c.v1.subscriptions.retrieve(ids["sub"], options={"stripe_version": CLASSIC})
    assert classic["start"] == sub.start_date and "start_date" not in classic
    legacy_invoice = c.v1.invoices.retrieve(ids["invoice"], options={"stripe_version": LEGACY})
    assert legacy_invoice["subscription"] == ids["sub"] and legacy_invoice["charge"].startswith("ch_")
    with pytest.raises(stripe.InvalidRequestError):  # refused before it runs: not counted as a read
        c.v1.customers.retrieve(ids["customer"], options={"stripe_version": "not-a-version"})
    assert server.sim.api_reads[("GET", "/v1/customers/{id}")] == 1
    reads = httpx.get(f"{server.url}/_sim/api_reads").json()["reads"]
    assert {"method": "GET", "path": "/v1/subscriptions/{id}", "count": 2} in reads
