"""`payrisk demo`: the platform against fixed schedules on one simulated population, with integrity checks.

The platform's dunning emails reach simulated customers (`payrisk.demo.mail`) who may give a new card or pay the
hosted invoice; the baselines send none. `--model` picks the outcome model (`simulator.models.MODELS`)."""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import secrets
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from payrisk.demo.baselines import EIGHT_IN_FOURTEEN, FIXED_SCHEDULE, NO_RETRY, run_schedule
from payrisk.demo.drive import Driver
from payrisk.demo.ledger import charges_per_key, score
from payrisk.demo.mail import MailReaders
from payrisk.demo.network import violations
from payrisk.demo.paired import PairedModel
from payrisk.demo.reads import Reads
from payrisk.demo.stack import DemoStack
from payrisk.demo.summary import Approach, Checks, Run, Summary, render
from payrisk.errors import CliError
from settings import Settings, load_settings
from simulator.catalog import is_hard
from simulator.core import SimulatorSettings
from simulator.models import load_model

#: Simulated time per step: retries land at most this late after their planned time.
STEP = timedelta(hours=1)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo; print the summary (text, or one JSON object with --json). Exit 1 when a check fails."""
    if args.customers < 1 or args.days < 1:
        raise CliError("--customers and --days must be at least 1")
    settings = load_settings(data_dir=Path(args.data_dir) if args.data_dir else None)
    out = sys.stderr if args.json else sys.stdout
    summary = run_demo(
        settings, args.customers, args.days, args.seed, out, keep=bool(getattr(args, "keep", False)),
        model=getattr(args, "model", None) or "default", http=bool(getattr(args, "http", False)),
    )
    print(summary.model_dump_json() if args.json else render(summary), flush=True)
    return 0 if summary.checks.passed else 1


def run_demo(
    settings: Settings, customers: int, days: int, seed: int, out: TextIO, keep: bool = False,
    model: str = "default", http: bool = False,
) -> Summary:
    run_id = secrets.token_hex(4)  # the simulator's id namespace and the run's database name
    sim_settings = SimulatorSettings(
        seed=seed,
        customers=customers,
        id_namespace=run_id,
        api_keys=(f"sk_test_demo_{run_id}",),
        webhook_secret=f"whsec_demo_{secrets.token_hex(16)}",
        auto_deliver=False,
        model=model,
    )
    began = time.monotonic()
    print(
        f"payrisk demo: {customers:,} customers × {days} days, seed {seed}, model {model} (run {run_id})",
        file=out,
        flush=True,
    )
    paired = PairedModel(load_model(sim_settings.model), seed)
    # the baselines need no platform: they run beside it in a process of their own at the lowest priority, on
    # the CPU the platform's round trips leave idle, and are usually done when it is
    baselines = _start_baselines(sim_settings, days)
    with DemoStack(settings, sim_settings, paired, run_id, keep, http=http) as stack:
        assert stack.settings.database.url is not None
        reads = Reads(stack.settings.database.url)
        try:
            started = time.monotonic()
            startup = started - began  # storage, database and migrations, Ray, actors, simulator, gateway
            mail = MailReaders(stack.sim, lambda: stack.catcher.headers, seed, paired.ordinal)
            driver = Driver(stack, reads, out, mail=mail)
            driver.run(days, STEP)
            platform_seconds = time.monotonic() - started
            platform, checks = _measure(stack, reads, driver)
            checked = time.monotonic()
        finally:
            reads.close()
    stopped = time.monotonic()
    print("baselines: no retry, fixed schedules (8/16/24 days; 8 tries in 14 days) on the same population…",
          file=out, flush=True)
    no_retry, fixed, eight = (future.result() for future in baselines)
    outside = {"startup": startup, "checks": checked - started - platform_seconds, "shutdown": stopped - checked,
               "baselines_left": time.monotonic() - stopped}
    run = Run(
        customers=customers,
        days=days,
        seed=seed,
        model=model,
        customer_actions=mail.actions,
        tenant="default",
        id_namespace=run_id,
        database=stack.database if keep else None,
        start=sim_settings.start.isoformat(),
        step_hours=STEP.total_seconds() / 3600,
        delivery="http" if http else "in-process",
        wall_seconds=round(time.monotonic() - began, 2),
        platform_seconds=round(platform_seconds, 2),
        customer_days_per_second=round(customers * days / platform_seconds, 1),
        phases={name: round(seconds, 2) for name, seconds in sorted({**driver.phases, **outside}.items())},
    )
    return Summary(run=run, platform=platform, no_retry=no_retry, fixed_schedule=fixed, fixed_8_in_14=eight,
                   checks=checks)


def _start_baselines(sim_settings: SimulatorSettings, days: int) -> list[Future[Approach]]:
    """The three fixed schedules, queued on one worker process (spawned: this process is about to start Ray and
    threads) that lowers its own priority first."""
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_lowest_priority)
    futures = [pool.submit(run_schedule, name, sim_settings, days, delays, STEP) for name, delays in (
        ("no retry", NO_RETRY), ("fixed 3 × 8 days", FIXED_SCHEDULE), ("fixed 8 tries in 14 days", EIGHT_IN_FOURTEEN))]
    pool.shutdown(wait=False)  # the worker exits once the queued runs are done
    return futures


def _lowest_priority() -> None:
    with contextlib.suppress(OSError):
        os.nice(19)


def _measure(stack: DemoStack, reads: Reads, driver: Driver) -> tuple[Approach, Checks]:
    entries = stack.sim.ledger_entries()
    platform = score("payrisk", entries, is_hard)
    ours = [e for e in entries if e.source == "api"]
    network = violations(reads.attempts())
    network["retried_after_do_not_retry"] = platform.retries_after_do_not_retry
    checks = Checks(
        double_charges=len(stack.sim.double_charges()),
        charges_per_attempt=charges_per_key(ours),
        attempts_without_charge=len(reads.attempt_keys() - {e.idempotency_key for e in ours}),
        deliveries=reads.deliveries(driver.acknowledged),
        network_violations=network,
        platform_revenue_matches_ledger=reads.recovered_revenue() == platform.revenue_saved,
        outbox_errors=len(driver.outbox_errors),
        outbox_first_error=driver.outbox_errors[0] if driver.outbox_errors else None,
    )
    return platform, checks
