"""`payrisk simulator`: run the Stripe-compatible simulator until interrupted."""

from __future__ import annotations

import argparse
import os
from datetime import datetime

import uvicorn

from simulator.app import create_app
from simulator.core import DEFAULT_START, Simulator, SimulatorSettings
from simulator.endpoints import EndpointConfig, EndpointOptions
from simulator.models import ModelConfigError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="payrisk simulator",
        description=(
            "Stripe-compatible provider simulator: the Stripe API subset a recovery platform uses (with "
            "Idempotency-Key semantics), a charge ledger, a pluggable outcome model, and signed webhooks."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=12111, help="port (default 12111)")
    p.add_argument(
        "--webhook-url",
        default=os.environ.get("SIMULATOR_WEBHOOK_URL"),
        help="where to POST webhooks, e.g. http://127.0.0.1:8000/webhooks/stripe (none: keep them)",
    )
    p.add_argument(
        "--webhook-secret",
        default=os.environ.get("STRIPE_WEBHOOK_SECRET", "whsec_simulator_local_only"),
        help="whsec_… secret that signs webhooks (env STRIPE_WEBHOOK_SECRET)",
    )
    p.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        help="accepted secret key; repeat for several (env STRIPE_API_KEY; default sk_test_simulator)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for ids, population and outcomes (default 0)")
    p.add_argument(
        "--id-namespace",
        default="",
        help="mixed into every id; use a new one per run against a platform that keeps its dedupe state",
    )
    p.add_argument("--customers", type=int, default=0, help="customers to generate at start (default 0)")
    p.add_argument(
        "--api-version",
        default=SimulatorSettings().api_version,
        help="the account's default version (the --webhook-url endpoint's, and API responses without a "
        "Stripe-Version header): before 2018-11-08 classic, before 2025-03-31 legacy, then basil shapes",
    )
    p.add_argument(
        "--webhook-enabled-events",
        default="*",
        help="comma-separated event types the --webhook-url endpoint receives (default *: all)",
    )
    p.add_argument(
        "--webhook-expand",
        default="",
        help="awkward sender: comma-separated invoice fields (charge, payment_intent) sent as objects "
        "(pre-basil versions only)",
    )
    p.add_argument(
        "--webhook-omit-previous-attributes",
        action="store_true",
        help="awkward sender: *.updated events without data.previous_attributes",
    )
    p.add_argument(
        "--webhook-endpoint",
        action="append",
        default=[],
        metavar="URL[@VERSION]",
        help="another webhook endpoint, in its own API version (default: --api-version); repeatable. "
        "Its secret is generated: read it at GET /_sim/webhook_endpoints",
    )
    p.add_argument(
        "--model",
        default="default",
        help="outcome model: default, always_succeed, always_decline:<code>, or a JSON file",
    )
    p.add_argument(
        "--clock",
        choices=("sim", "real"),
        default="sim",
        help="sim: time moves only via POST /_sim/clock/advance (default); real: wall clock",
    )
    p.add_argument(
        "--start",
        type=datetime.fromisoformat,
        default=DEFAULT_START,
        help=f"simulated clock start, ISO 8601 with offset (default {DEFAULT_START.isoformat()})",
    )
    p.add_argument("--smart-retries", action="store_true", help="let the simulator retry failed renewals itself")
    return p


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _endpoint(spec: str) -> EndpointConfig:
    """`URL` or `URL@VERSION` (the version is what follows the last `@`, if it looks like one)."""
    url, at, version = spec.rpartition("@")
    if at and version[:1].isdigit():
        return EndpointConfig(url=url, api_version=version)
    return EndpointConfig(url=spec)


def settings_from(args: argparse.Namespace) -> SimulatorSettings:
    keys = args.api_keys or [os.environ.get("STRIPE_API_KEY") or "sk_test_simulator"]
    options = EndpointOptions(
        enabled_events=_csv(args.webhook_enabled_events) or ("*",),
        expand=_csv(args.webhook_expand),  # type: ignore[arg-type]  # validated by pydantic
        omit_previous_attributes=args.webhook_omit_previous_attributes,
    )
    return SimulatorSettings(
        api_keys=tuple(keys),
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        seed=args.seed,
        customers=args.customers,
        api_version=args.api_version,
        webhook_options=options,
        webhook_endpoints=tuple(_endpoint(spec) for spec in args.webhook_endpoint),
        model=args.model,
        clock=args.clock,
        start=args.start,
        smart_retries=args.smart_retries,
    )


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        sim = Simulator(settings_from(args))
    except (ModelConfigError, ValueError) as exc:
        print(f"payrisk simulator: {exc}")
        return 2
    print(
        f"payrisk simulator: http://{args.host}:{args.port} · model {sim.model.name} · "
        f"{len(sim.state.customers)} customers · webhooks → {args.webhook_url or '(kept, not sent)'}"
    )
    for ep in sim.webhook_endpoints()[1:]:
        print(f"  webhook endpoint {ep.id}: {ep.url} · {ep.api_version} · secret {ep.secret}")
    uvicorn.run(create_app(sim), host=args.host, port=args.port, log_level="info")
    return 0
