"""Request ids: taken from a W3C `traceparent` (its trace id) or a sane `X-Request-ID`, else made up; carried with
each hand-off to the customer's shard, so the shard's log lines name the request that caused them."""

from __future__ import annotations

from gateway.dispatch import Dispatcher
from gateway.metrics import GatewayMetrics
from gateway.telemetry import request_context, request_id_of
from settings import load_settings
from settings.logging import add_request_id
from store import Database

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_valid_traceparent_gives_its_trace_id() -> None:
    headers = {b"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01".encode(), b"x-request-id": b"mine"}
    assert request_id_of(headers) == TRACE


def test_an_invalid_or_all_zero_traceparent_falls_back_to_x_request_id() -> None:
    for bad in (b"00-xyz-00f067aa0ba902b7-01", f"00-{'0' * 32}-00f067aa0ba902b7-01".encode(), b"garbage"):
        assert request_id_of({b"traceparent": bad, b"x-request-id": b"req-42"}) == "req-42"


def test_an_insane_x_request_id_is_replaced_by_a_fresh_one() -> None:
    made = request_id_of({b"x-request-id": b"a b\nforged=1"})
    assert made != "a b\nforged=1" and len(made) == 32 and made != request_id_of({})


def test_a_hand_off_carries_the_request_id_bound_while_the_webhook_was_answered() -> None:
    settings = load_settings(environ={}, dotenv=None, database_url="postgresql://nobody@127.0.0.1:1/x",
                             redis_url="redis://127.0.0.1:1/0")
    dispatcher = Dispatcher(Database(settings.database.url or ""), settings, GatewayMetrics())
    with request_context("req-7"):  # as RequestTelemetry binds it while the webhook is answered
        assert add_request_id(None, "info", {"event": "x"})["request_id"] == "req-7"  # and for the log lines
        assert add_request_id(None, "info", {"request_id": "own"})["request_id"] == "own"  # a bound one stays
        dispatcher.submit("default", 11, "cus_a", [])
    assert "request_id" not in add_request_id(None, "info", {"event": "x"})  # reset afterwards
    dispatcher.submit("default", 12, "cus_a", [])  # no request (the sweeper's re-dispatch): no id
    items = [item for buffer in dispatcher._buffers.values() for item in buffer]  # noqa: SLF001
    assert [(i["delivery_id"], i.get("request_id")) for i in items] == [(11, "req-7"), (12, None)]
