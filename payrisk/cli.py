"""The `payrisk` command line. Every failure is one clear line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from payrisk.errors import CliError
from settings import ConfigError

Handler = Callable[[argparse.Namespace], int]


def _add_up(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("up", help="run the platform (embedded PostgreSQL/Redis unless URLs are given)",
                       description="Start PostgreSQL and Redis (embedded unless DATABASE_URL/REDIS_URL are set), "
                       "a local Ray on 127.0.0.1 (unless RAY_ADDRESS is set), apply migrations, start the actors "
                       "and serve the gateway. Ctrl-C or SIGTERM stops everything it started.")
    p.add_argument("--host", help="bind address (default 127.0.0.1, env PAYRISK_HOST)")
    p.add_argument("--port", type=int, help="HTTP port (default 8000, env PAYRISK_PORT)")
    p.add_argument("--workers", type=int, help="uvicorn worker processes (default 1, env PAYRISK_WORKERS)")
    p.add_argument("--data-dir", help="where embedded data lives (env PAYRISK_DATA_DIR)")
    p.add_argument("--no-dashboard", action="store_true", help="start Ray without its dashboard")
    p.add_argument("--log-format", choices=("json", "console"),
                   help="one JSON object per line (default, env PAYRISK_LOG_FORMAT) or readable console lines")
    p.add_argument("--grafana-host", help="Grafana URL for the Ray dashboard's Metrics tab (env RAY_GRAFANA_HOST)")
    p.add_argument("--prometheus-host", help="Prometheus URL the Ray dashboard queries (env RAY_PROMETHEUS_HOST)")
    p.set_defaults(handler=_lazy("payrisk.serve", "cmd_up"))


def _add_migrate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("migrate", help="apply database migrations (DATABASE_URL, or the embedded database)",
                       description="Apply the numbered SQL migrations in migrations/ (forward-only, idempotent).")
    p.add_argument("--data-dir", help="embedded data directory when DATABASE_URL is not set")
    p.add_argument("--json", action="store_true", help='print {"applied": [...]}')
    p.set_defaults(handler=_lazy("payrisk.serve", "cmd_migrate"))


def _add_replay(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replay", help="replay quarantined deliveries, or a customer's event log",
                       description="--quarantined re-parses quarantined deliveries and hands the ones that now "
                       "parse to their customers; --customer ID [--verify] folds the customer's event log and "
                       "compares it with the stored checkpoint.")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--quarantined", action="store_true", help="re-parse quarantined deliveries")
    group.add_argument("--customer", help="customer id whose event log to replay")
    p.add_argument("--tenant", default="default", help="tenant id (default: default)")
    p.add_argument("--verify", action="store_true", help="fail unless replay equals the checkpoint")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_lazy("payrisk.replay", "cmd_replay"))


def _add_simulator(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # listed here for `payrisk --help`; `main` hands `payrisk simulator ...` to the simulator's own parser
    sub.add_parser("simulator", help="run the Stripe-compatible provider simulator (payrisk simulator --help)")


def _add_strategies(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("strategies", help="validate or explain retry strategies")
    ssub = p.add_subparsers(dest="strategies_command", required=True)
    v = ssub.add_parser("validate", help="validate strategy templates (all shipped ones, or FILE)")
    v.add_argument("file", nargs="?", help="a strategy or segments JSON file")
    v.add_argument("--json", action="store_true", help='print one JSON object: {"ok": …, "summary"|"error": …}')
    v.set_defaults(handler=_lazy("payrisk.strategy_cli", "cmd_validate"))
    e = ssub.add_parser("explain", help="explain the strategy and next steps for a customer")
    e.add_argument("--customer", required=True, help="customer id")
    e.add_argument("--tenant", default="default", help="tenant id (default: default)")
    e.add_argument("--json", action="store_true", help="print one JSON object: segment, strategy, next, schedule")
    e.set_defaults(handler=_lazy("payrisk.strategy_cli", "cmd_explain"))


def _add_classification(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("classification", help="a tenant's classification overrides (stored in the database)")
    csub = p.add_subparsers(dest="classification_command", required=True)
    o = csub.add_parser("overrides", help="show or replace a tenant's classification overrides",
                        description="Running shards use a change within a few seconds.")
    osub = o.add_subparsers(dest="action", required=True)
    s = osub.add_parser("set", help="replace the tenant's overrides with those in FILE...",
                        description="Replace the tenant's overrides with those in FILE... (each an override file, a "
                        "list of them, or {\"overrides\": [...]}), validated as override files are.")
    s.add_argument("files", nargs="+", metavar="FILE", help="override files")
    s.add_argument("--tenant", required=True, help="tenant id")
    s.set_defaults(handler=_lazy("payrisk.classification_cli", "cmd_overrides"))
    w = osub.add_parser("show", help="print the tenant's stored overrides as JSON")
    w.add_argument("--tenant", required=True, help="tenant id")
    w.set_defaults(handler=_lazy("payrisk.classification_cli", "cmd_overrides"), files=[])


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="simulate customers and renewals; compare recovery with two baselines",
                       description="On the embedded stack (or DATABASE_URL/REDIS_URL), the simulator creates "
                       "customers and days of renewals on a simulated clock; payrisk recovers what it can. Ends with "
                       "a summary beside a no-retry baseline and a naive fixed schedule, plus integrity checks.")
    p.add_argument("--customers", type=int, default=1_000,
                   help="population size (default 1000, a few minutes; --customers 10000 for the full run)")
    p.add_argument("--days", type=int, default=30, help="simulated days (default 30)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--model", choices=("default", "late_peak", "pay_cycle"), default="default",
                   help="the simulator's outcome model (default: default)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--http", action="store_true",
                   help="deliver every webhook over HTTP, signed, as a provider would (slower); by default they are "
                   "handed to the gateway's ingest in-process: stored and dispatched the same way, no HTTP")
    p.add_argument("--data-dir", help="embedded data directory when DATABASE_URL is not set")
    p.set_defaults(handler=_lazy("payrisk.demo", "cmd_demo"))


def _add_whatif(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("whatif", help="replay a tenant's recorded failures with a candidate strategy",
                       description="Replay the failures classified in [--from, --to) through the decision core with "
                       "the candidate strategy FILE and an outcome model fitted from the tenant's own ledger; print "
                       "recovered revenue, retries and emails, candidate vs what actually happened (DATABASE_URL).")
    p.add_argument("--strategy", required=True, help="a strategy template JSON file (the candidate)")
    p.add_argument("--from", dest="from_date", required=True, help="first day (YYYY-MM-DD, UTC)")
    p.add_argument("--to", dest="to_date", required=True, help="day after the last (YYYY-MM-DD, UTC)")
    p.add_argument("--tenant", default="default", help="tenant id (default: default)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_lazy("payrisk.whatif", "cmd_whatif"))


def _add_chaos(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("chaos", help="inject faults into a live stack and check the invariants after each",
                       description="Start an own stack (PostgreSQL, Redis, Ray, the simulator, the gateway), drive "
                       "realistic traffic and inject faults from the catalogue (docs/CHAOS.md); after each, settle "
                       "and check every invariant. Prints a fault × invariant table; exit 1 on any violation.")
    p.add_argument("--duration", type=float, default=120.0, help="seconds of faults (default 120)")
    p.add_argument("--seed", type=int, default=1, help="random seed: fault order and traffic (default 1)")
    p.add_argument("--faults", help="comma-separated fault names, run once each in this order (default: all, "
                   "shuffled with the seed, until --duration)")
    p.add_argument("--customers", type=int, default=300, help="simulated customers (default 300)")
    p.add_argument("--json", action="store_true", help="print one JSON object (violations: the count)")
    p.set_defaults(handler=_lazy("payrisk.chaos.command", "cmd_chaos"))


def _add_doctor(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("doctor", help="check PostgreSQL, Redis, Ray, SMTP, provider keys and the webhook endpoint",
                       description="Connect to everything `payrisk up` needs (nothing is started or written) and "
                       "print one line per check with what to fix. Exit 1 when a check fails.")
    p.add_argument("--json", action="store_true", help="print one JSON object: {ok, checks: [...]}")
    p.set_defaults(handler=_lazy("payrisk.doctor", "cmd_doctor"))


def _add_config(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="the platform's settings")
    csub = p.add_subparsers(dest="config_command", required=True)
    c = csub.add_parser("check", help="print the effective settings (secrets masked); exit 2 on a bad one",
                        description="Read the settings exactly as `payrisk up` does (environment over .env over "
                        "defaults) and print them by group with their environment variables; secrets are shown as "
                        "<set>. A bad setting prints one line naming it and exits 2.")
    c.add_argument("--json", action="store_true", help="print {ok, settings: {group: {VARIABLE: value}}}")
    c.set_defaults(handler=_lazy("payrisk.config_cli", "cmd_config_check"))


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("payrisk")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _lazy(module: str, name: str) -> Handler:
    """Import heavy modules (Ray, uvicorn) only for the command that needs them."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        handler: Handler = getattr(importlib.import_module(module), name)
        return handler(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="payrisk", description="Self-hosted failed-payment recovery platform.")
    parser.add_argument("--version", action="version", version=f"payrisk {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_up, _add_migrate, _add_replay, _add_simulator, _add_strategies, _add_classification,
                _add_demo, _add_whatif, _add_chaos, _add_doctor, _add_config):
        add(sub)
    from payrisk.access_cli import add_parsers

    add_parsers(sub)  # keys, tenants, secrets, customers, retention
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulator"]:  # the simulator has its own parser: hand it every argument as given
        from simulator.cli import main as simulator_main

        return int(simulator_main(argv[1:]))
    args = build_parser().parse_args(argv)
    from settings.logging import configure_logging

    # log lines go to stderr from the first one on: stdout carries only a command's own output (`--json`)
    configure_logging(os.environ.get("PAYRISK_LOG_LEVEL") or "info")
    try:
        return int(args.handler(args))
    except (CliError, ConfigError) as exc:
        print(f"payrisk: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
