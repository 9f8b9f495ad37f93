"""The simulator's Stripe API subset, driven by the real `stripe` SDK over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
import stripe

from simulator.clock import SimClock
from simulator.core import SimulatorSettings
from simulator.server import SimulatorServer


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorSettings(seed=11, auto_deliver=False, api_keys=("sk_test_a", "sk_test_b"))) as s:
        yield s


def client(server: SimulatorServer, key: str = "sk_test_a") -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": server.url}, max_network_retries=0)


def open_invoice(c: stripe.StripeClient, card: str, amount: int = 2500) -> tuple[str, str]:
    """A customer whose default card is the Stripe test card `card`, and an invoice to pay; (invoice, pm)."""
    customer = c.v1.customers.create(params={"email": "ada@example.test"})
    pm = c.v1.payment_methods.attach(card, params={"customer": customer.id})
    c.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": pm.id}})
    invoice = c.v1.invoices.create(params={"customer": customer.id, "amount": amount})  # type: ignore[arg-type]
    return invoice.id, pm.id


def test_the_same_key_replays_the_first_decline_and_charges_once(server: SimulatorServer) -> None:
    c = client(server)
    invoice_id, _ = open_invoice(c, "pm_card_chargeDeclinedInsufficientFunds")
    errors = []
    for _ in range(3):
        with pytest.raises(stripe.CardError) as caught:
            c.v1.invoices.pay(invoice_id, options={"idempotency_key": f"retry:{invoice_id}:1"})
        errors.append(caught.value)
    charges = {e.error.charge if e.error else None for e in errors}
    assert len(charges) == 1 and None not in charges
    assert errors[1].headers is not None and errors[1].headers.get("idempotent-replayed") == "true"
    assert [e.idempotency_key for e in server.sim.ledger_entries(invoice_id)] == [f"retry:{invoice_id}:1"]


def test_the_same_key_replays_the_first_success_without_a_second_charge(server: SimulatorServer) -> None:
    c = client(server)
    invoice_id, _ = open_invoice(c, "pm_card_visa")
    first = c.v1.invoices.pay(invoice_id, options={"idempotency_key": "k-success"})
    again = c.v1.invoices.pay(invoice_id, options={"idempotency_key": "k-success"})
    assert first.status == again.status == "paid"
    assert len(server.sim.ledger_entries(invoice_id)) == 1
    assert server.sim.double_charges() == {}


def test_the_same_key_with_other_parameters_is_an_idempotency_error(server: SimulatorServer) -> None:
    c = client(server)
    invoice_id, pm_id = open_invoice(c, "pm_card_chargeDeclined")
    with pytest.raises(stripe.CardError):
        c.v1.invoices.pay(invoice_id, options={"idempotency_key": "k-params"})
    with pytest.raises(stripe.IdempotencyError) as caught:
        c.v1.invoices.pay(invoice_id, params={"payment_method": pm_id}, options={"idempotency_key": "k-params"})
    assert caught.value.http_status == 400
    assert len(server.sim.ledger_entries(invoice_id)) == 1


def test_different_keys_are_two_charge_attempts(server: SimulatorServer) -> None:
    c = client(server)
    invoice_id, _ = open_invoice(c, "pm_card_chargeDeclined")
    for key in ("attempt-1", "attempt-2"):
        with pytest.raises(stripe.CardError):
            c.v1.invoices.pay(invoice_id, options={"idempotency_key": key})
    entries = server.sim.ledger_entries(invoice_id)
    assert [(e.idempotency_key, e.attempt, e.outcome) for e in entries] == [
        ("attempt-1", 1, "declined"),
        ("attempt-2", 2, "declined"),
    ]


def test_keys_belong_to_their_api_key(server: SimulatorServer) -> None:
    invoice_id, _ = open_invoice(client(server), "pm_card_chargeDeclined")
    for key in ("sk_test_a", "sk_test_b"):
        with pytest.raises(stripe.CardError):
            client(server, key).v1.invoices.pay(invoice_id, options={"idempotency_key": "shared-key"})
    assert len(server.sim.ledger_entries(invoice_id)) == 2


def test_a_key_older_than_a_day_is_forgotten(server: SimulatorServer) -> None:
    c = client(server)
    invoice_id, _ = open_invoice(c, "pm_card_chargeDeclined")
    with pytest.raises(stripe.CardError):
        c.v1.invoices.pay(invoice_id, options={"idempotency_key": "old-key"})
    clock = server.sim.clock
    assert isinstance(clock, SimClock)
    clock.advance(timedelta(hours=24, seconds=1).total_seconds())
    with pytest.raises(stripe.CardError):
        c.v1.invoices.pay(invoice_id, options={"idempotency_key": "old-key"})
    assert len(server.sim.ledger_entries(invoice_id)) == 2


def test_a_paid_invoice_refuses_a_second_payment_under_a_new_key(server: SimulatorServer) -> None:
    c = client(server)
    invoice_id, _ = open_invoice(c, "pm_card_visa")
    c.v1.invoices.pay(invoice_id, options={"idempotency_key": "first"})
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.invoices.pay(invoice_id, options={"idempotency_key": "second"})
    assert server.sim.double_charges() == {}


def test_an_unknown_api_key_is_refused_with_401(server: SimulatorServer) -> None:
    with pytest.raises(stripe.AuthenticationError) as caught:
        client(server, "sk_test_unknown").v1.customers.create()
    assert caught.value.http_status == 401
    assert caught.value.error is not None and caught.value.error.code == "invalid_api_key"
    assert server.sim.state.customers == {}


def test_a_decline_parses_into_a_card_error_with_every_decline_field(server: SimulatorServer) -> None:
    c = client(server)
    invoice_id, _ = open_invoice(c, "pm_card_mastercard_chargeDeclinedInsufficientFunds")
    with pytest.raises(stripe.CardError) as caught:
        c.v1.invoices.pay(invoice_id, options={"idempotency_key": "k-fields"})
    error = caught.value.error
    assert error is not None and caught.value.http_status == 402
    assert (error.type, error.code, error.decline_code) == ("card_error", "card_declined", "insufficient_funds")
    assert (error.advice_code, error.network_advice_code, error.network_decline_code) == ("try_again_later", "02", "51")
    assert error.charge and error.charge.startswith("ch_")
    assert error.payment_intent is not None and error.payment_intent.id.startswith("pi_")


def test_a_lost_card_says_do_not_try_again(server: SimulatorServer) -> None:
    c = client(server)
    invoice_id, _ = open_invoice(c, "pm_card_chargeDeclinedLostCard")
    with pytest.raises(stripe.CardError) as caught:
        c.v1.invoices.pay(invoice_id, options={"idempotency_key": "k-lost"})
    assert caught.value.error is not None
    assert (caught.value.error.decline_code, caught.value.error.advice_code) == ("lost_card", "do_not_try_again")


def test_rate_limiting_raises_rate_limit_error_and_stores_nothing(server: SimulatorServer) -> None:
    c = client(server)
    invoice_id, _ = open_invoice(c, "pm_card_visa")
    server.sim.set_faults(api_rate_limit_rate=1.0)
    with pytest.raises(stripe.RateLimitError) as caught:
        c.v1.invoices.pay(invoice_id, options={"idempotency_key": "k-429"})
    assert caught.value.http_status == 429
    server.sim.set_faults(api_rate_limit_rate=0.0)
    assert c.v1.invoices.pay(invoice_id, options={"idempotency_key": "k-429"}).status == "paid"


def test_a_500_is_stored_and_replayed_under_its_key(server: SimulatorServer) -> None:
    c = client(server)
    invoice_id, _ = open_invoice(c, "pm_card_visa")
    server.sim.set_faults(api_error_rate=1.0)
    with pytest.raises(stripe.APIError):
        c.v1.invoices.pay(invoice_id, options={"idempotency_key": "k-500"})
    server.sim.set_faults(api_error_rate=0.0)
    with pytest.raises(stripe.APIError):
        c.v1.invoices.pay(invoice_id, options={"idempotency_key": "k-500"})
    assert server.sim.ledger_entries(invoice_id) == []


def test_a_500_after_the_charge_leaves_one_charge_that_reading_the_invoice_reveals(server: SimulatorServer) -> None:
    c = client(server)
    invoice_id, _ = open_invoice(c, "pm_card_visa")
    server.sim.set_faults(api_error_after_charge_rate=1.0)
    for _ in range(2):
        with pytest.raises(stripe.APIError):
            c.v1.invoices.pay(invoice_id, options={"idempotency_key": "k-ambiguous"})
    assert c.v1.invoices.retrieve(invoice_id).status == "paid"
    assert [e.outcome for e in server.sim.ledger_entries(invoice_id)] == ["succeeded"]


def test_a_missing_object_is_a_404_invalid_request(server: SimulatorServer) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client(server).v1.invoices.retrieve("in_missing")
    assert (caught.value.http_status, caught.value.code) == (404, "resource_missing")


def test_an_invoice_can_be_voided_or_marked_uncollectible(server: SimulatorServer) -> None:
    c = client(server)
    first, _ = open_invoice(c, "pm_card_visa")
    second, _ = open_invoice(c, "pm_card_visa")
    c.v1.invoices.finalize_invoice(first)
    c.v1.invoices.finalize_invoice(second)
    assert c.v1.invoices.void_invoice(first).status == "void"
    assert c.v1.invoices.mark_uncollectible(second).status == "uncollectible"
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.invoices.pay(first, options={"idempotency_key": "pay-void"})
    types = [e["type"] for e in server.sim.events]
    assert "invoice.voided" in types and "invoice.marked_uncollectible" in types


def test_a_subscription_charges_its_first_invoice_and_can_be_canceled(server: SimulatorServer) -> None:
    c = client(server)
    customer = c.v1.customers.create()
    pm = c.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    sub = c.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "default_payment_method": pm.id,
            "items": [
                {
                    "price_data": {
                        "unit_amount": 900,
                        "currency": "usd",
                        "product": "prod_sim",
                        "recurring": {"interval": "month"},
                    }
                }
            ],
        }
    )
    assert sub.status == "active"
    assert c.v1.invoices.retrieve(str(sub.latest_invoice)).status == "paid"
    assert c.v1.subscriptions.cancel(sub.id).status == "canceled"
    assert server.sim.events[-1]["type"] == "customer.subscription.deleted"


def test_a_new_default_card_is_reported_with_its_previous_value(server: SimulatorServer) -> None:
    c = client(server)
    customer = c.v1.customers.create()
    pm = c.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    updated = c.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": pm.id}})
    assert updated.invoice_settings is not None and updated.invoice_settings.default_payment_method == pm.id
    event = server.sim.events[-1]
    assert event["type"] == "customer.updated"
    assert event["data"]["previous_attributes"] == {"invoice_settings": {"default_payment_method": None}}


def test_ledger_and_control_endpoints_answer_json(server: SimulatorServer) -> None:
    c = client(server)
    invoice_id, _ = open_invoice(c, "pm_card_visa")
    c.v1.invoices.pay(invoice_id, options={"idempotency_key": "k-ledger"})
    ledger = httpx.get(f"{server.url}/_sim/ledger", params={"invoice": invoice_id}).json()
    assert [e["idempotency_key"] for e in ledger["entries"]] == ["k-ledger"]
    assert ledger["double_charges"] == {}
    faults = httpx.post(f"{server.url}/_sim/faults", json={"webhook_duplicate_rate": 0.5}).json()
    assert faults["webhook_duplicate_rate"] == 0.5
    assert httpx.post(f"{server.url}/_sim/faults", json={"no_such_fault": 1}).status_code == 400
