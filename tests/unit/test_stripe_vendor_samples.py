"""Stripe's own published objects (stripe/openapi fixtures for the current API version, the stripe-cli trigger
recipes, the support page's excessive-retry block), copied from the shared samples with their `_source`, through the
real parser, classifier and decision core. They are placeholders in real shapes: what must hold is that every one is
read without error, in the current version's shape, and decided safely."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from actors.domain.case import empty_state
from actors.domain.classification import classify, default_tables
from actors.domain.decide import decide_inbound, decide_timer
from actors.domain.decisions import Context
from actors.domain.inbound import DeclineInfo, InboundKind
from actors.domain.strategy_planner import StrategyPlanner
from gateway.providers.stripe.envelope import parse_envelope
from gateway.providers.stripe.events import normalize

SAMPLES = Path(__file__).parent / "fixtures" / "stripe" / "samples"
CURRENT = "2026-06-24.dahlia"
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
TABLES = default_tables()


def sample(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads((SAMPLES / f"{name}.json").read_bytes())
    assert doc["_source"]  # every sample says where it came from
    return doc


def as_event(event_type: str, obj: dict[str, Any]) -> list[Any]:
    body = {"id": f"evt_{event_type}", "object": "event", "type": event_type, "created": int(T0.timestamp()),
            "api_version": CURRENT, "data": {"object": obj}, "request": {"id": None, "idempotency_key": None}}
    return normalize(parse_envelope(orjson.dumps(body)))


def classify_json(provider: str, decline: dict[str, Any]) -> dict[str, Any]:
    info = DeclineInfo(**{k: v for k, v in decline.items() if k in DeclineInfo.model_fields})
    return classify(provider, info, TABLES).model_dump(mode="json")  # type: ignore[no-any-return]


def ctx(now: datetime = T0) -> Context:
    return Context(now=now, classify=classify_json, planner=StrategyPlanner())


def test_the_current_invoice_fixture_is_a_failure_with_no_charge_claimed_and_no_ids() -> None:
    invoice = sample("openapi_fixture_invoice")["object"]
    (event,) = as_event("invoice.payment_failed", invoice)
    assert (event.kind, event.invoice_id, event.customer_id) == (InboundKind.PAYMENT_FAILED, invoice["id"],
                                                                 invoice["customer"])
    assert event.subscription_id == "subscription"  # under parent.subscription_details in the current shape
    assert (event.charge_id, event.payment_intent_id) == (None, None)
    assert event.no_charge_made is None  # `charge: null` is a placeholder in this version, not "nothing charged"


def test_the_current_invoice_fixture_waits_for_details_and_is_never_taken_for_an_sca_failure() -> None:
    (event,) = as_event("invoice.payment_failed", sample("openapi_fixture_invoice")["object"])
    decision = decide_inbound(empty_state("default", event.customer_id), event.model_dump(mode="json"), ctx())
    case = decision.state["cases"][event.invoice_id]
    assert case["state"] == "classifying" and case["charge_less"] is False
    fired = decide_timer(decision.state, event.invoice_id, {"action": "classify"}, ctx())
    assert fired.state["cases"][event.invoice_id]["classification"]["category"] != "AUTHENTICATION_REQUIRED"


def test_the_charge_and_payment_intent_fixtures_of_no_customer_are_ignored_not_quarantined() -> None:
    charge, intent = sample("openapi_fixture_charge")["object"], sample("openapi_fixture_payment_intent")["object"]
    assert charge["customer"] is None and intent["customer"] is None  # one-off payments: nobody to recover from
    assert as_event("charge.failed", charge) == [] and as_event("payment_intent.payment_failed", intent) == []


def test_the_charge_and_payment_intent_fixtures_are_decline_details() -> None:
    charge_obj = {**sample("openapi_fixture_charge")["object"], "customer": "cus_1"}
    intent_obj = {**sample("openapi_fixture_payment_intent")["object"], "customer": "cus_1"}
    (charge,) = as_event("charge.failed", charge_obj)
    (intent,) = as_event("payment_intent.payment_failed", intent_obj)
    assert charge.kind == intent.kind == InboundKind.DECLINE_DETAILS
    assert charge.invoice_id is None and intent.invoice_id is None  # not in the current shape
    assert charge.amount_due == 100 and charge.currency == "usd"


def test_the_subscription_fixture_gives_the_start_for_tenure() -> None:
    obj = sample("openapi_fixture_subscription")["object"]
    (event,) = as_event("customer.subscription.updated", obj)
    assert event.customer_since == datetime.fromtimestamp(obj["start_date"], UTC)


@pytest.mark.parametrize("version", ["2017-08-15", "2020-08-27", CURRENT])
def test_a_charge_stripe_blocked_for_excessive_retries_is_never_retried(version: str) -> None:
    doc = sample("support_doc_blocked_excessive_retry")
    error = doc["api_error"]["error"]
    charge = {"id": error["charge"], "object": "charge", "customer": "cus_blocked", "amount": 2500, "currency": "usd",
              "failure_code": error["code"], "failure_message": error["message"],
              "outcome": doc["charge_failed_outcome"], "payment_method_details": {"type": "card", "card": {
                  "brand": "visa", "fingerprint": "fp_blocked", "country": "US"}}}
    (event,) = as_event("charge.failed", charge)
    assert event.decline is not None and event.decline.outcome_reason == "previously_declined_do_not_retry"
    verdict = classify_json("stripe", event.decline.model_dump())
    assert verdict["retryable"] is False, verdict


def test_the_cli_recipes_use_only_calls_the_simulator_serves() -> None:
    """`stripe trigger invoice.payment_failed` / `charge.failed`: every call of the recipes exists in the simulator,
    so the same recipes can be replayed against it."""
    from simulator.app import create_app
    from simulator.core import Simulator, SimulatorSettings

    routes = [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", r.path) + "$"), set(r.methods or ()))
              for r in create_app(Simulator(SimulatorSettings())).routes
              if hasattr(r, "path") and r.path.startswith("/v1/") and "{rest" not in r.path]
    for name in ("stripe_cli_trigger_invoice_payment_failed", "stripe_cli_trigger_charge_failed"):
        for fixture in sample(name)["recipe"]["fixtures"]:
            path = re.sub(r"\$\{[^}]+\}", "x_1", fixture["path"])
            method = fixture["method"].upper()
            assert any(pattern.match(path) and method in methods for pattern, methods in routes), (method, path)
