"""`payrisk chaos`: drive realistic traffic, inject faults from the catalogue, check the invariants after each.

A round: pick a fault (in the order given, or shuffled with the seed) → inject it → keep traffic flowing for the
fault's hold (simulated hours pass: renewals fail, webhooks arrive with duplicates and reordering, retries and
emails come due) → heal → settle (every acknowledged delivery applied, no timer due, the outbox drained) → check
every invariant. Rounds go on until `--duration` seconds have passed. Exit 1 on any violation.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import threading
import time
from datetime import timedelta
from typing import Any, TextIO

import orjson

from payrisk.chaos.checks import CHECKS, run_checks
from payrisk.chaos.faults import BY_NAME, Fault, pick
from payrisk.chaos.stack import ChaosStack
from payrisk.errors import CliError
from payrisk.progress import progress_bar
from settings.logging import configure_logging
from store import StoreError
from store.integrity import Reader

#: a row claimed by an outbox worker that died is re-claimed after this lease (on the injected clock): not lost
OUTBOX_LEASE = timedelta(minutes=5)
STEP = timedelta(days=1)  # simulated time per traffic step: renewals fail, retries come due
SETTLE_SECONDS = 120.0


def cmd_chaos(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.faults.split(",") if n.strip()] if args.faults else None
    unknown = sorted(set(names or []) - set(BY_NAME))
    if unknown:
        raise CliError(f"--faults: unknown fault(s) {', '.join(unknown)}; known: {', '.join(sorted(BY_NAME))}")
    if args.duration <= 0 or args.customers < 1:
        raise CliError("--duration and --customers must be positive")
    out = sys.stderr if args.json else sys.stdout
    configure_logging("warning")  # logs go to stderr; stdout is the table or the JSON report
    report = run_chaos(args.seed, args.duration, names, args.customers, out)
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() if args.json else render(report), flush=True)
    return 0 if report["violations"] == 0 else 1


def run_chaos(seed: int, duration: float, names: list[str] | None, customers: int, out: TextIO) -> dict[str, Any]:
    rng = random.Random(seed)
    began = time.monotonic()
    print(f"payrisk chaos: seed {seed}, {duration:g} s, {customers} customers; starting the stack…", file=out,
          flush=True)
    with ChaosStack(seed, customers) as stack:
        stack.jump, stack.poison = timedelta(0), []
        driver = Driver(stack, out)
        driver.step()  # traffic before the first fault: something to break
        started, results = time.monotonic(), []
        faults = pick(names, rng, 10_000)
        # the bar counts faults when they are named, else the seconds of the run (a round ends past the duration)
        total, shown = (float(len(names)) if names is not None else duration), 0.0
        with progress_bar(out, total, "chaos: faults" if names is not None else "chaos: seconds") as bar:
            for index, fault in enumerate(faults):
                if names is None and time.monotonic() - started >= duration:
                    break
                results.append(driver.round(fault, rng))
                done = float(index + 1) if names is not None else min(duration, time.monotonic() - started)
                bar.advance(done - shown, line=_line(index + 1, results[-1]))
                shown = done
                if names is not None and index + 1 >= len(names):
                    break
        return _report(stack, driver, results, seed, time.monotonic() - started, time.monotonic() - began)


class Driver:
    def __init__(self, stack: ChaosStack, out: TextIO) -> None:
        self.stack, self.out = stack, out
        self.now = stack.sim.now()
        self.tick_errors = 0
        self.left: dict[str, int] = {}

    def step(self) -> None:
        """One traffic step: STEP of simulated time (plus any clock jump), webhooks delivered, retries fired."""
        self.now += STEP + self.stack.jump
        self.stack.jump = timedelta(0)
        self.stack.sim.advance(self.now)
        self.stack.set_clock(self.now)
        self.stack.flush()
        self._ticks()

    def _ticks(self) -> None:
        import ray

        for actor in (self.stack.system.scheduler, self.stack.system.outbox):
            try:
                while ray.get(actor.tick.remote(), timeout=60) > 0:
                    self.stack.flush()
            except Exception:  # noqa: BLE001 - a fault may be on: the loops and the settle phase carry on
                self.tick_errors += 1

    def round(self, fault: Fault, rng: random.Random) -> dict[str, Any]:
        t0 = time.monotonic()
        acked_before = self.stack.pump.acked_count
        heal = fault.inject(self.stack, rng)
        if fault.heal_after_step:
            try:
                self.step()
            finally:
                heal()
        else:
            healer = threading.Timer(fault.hold, heal)
            healer.start()
            try:
                self.step()
            finally:
                healer.join()
        settled = self.settle()
        violations = run_checks(self.stack)
        return {"fault": fault.name, "what": fault.what, "seconds": round(time.monotonic() - t0, 1),
                "acknowledged": self.stack.pump.acked_count - acked_before, "settled": settled,
                **({} if settled else {"left": self.left}),
                "violations": violations}

    def settle(self, timeout: float = SETTLE_SECONDS) -> bool:
        """Until nothing is left to do: deliveries applied, no timer due, the outbox drained."""
        deadline, quiet_in_a_row = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            # the simulated clock is an actor too: restarted (its node killed) it would start from its first time
            with contextlib.suppress(Exception):
                self.stack.set_clock(self.now)
            self.stack.flush()
            self._ticks()
            quiet_in_a_row = quiet_in_a_row + 1 if self._quiet() else 0
            if quiet_in_a_row >= 2:  # twice, a second apart: work started asynchronously (API reads) has landed
                return True
            time.sleep(1.0 if quiet_in_a_row else 0.5)
        return False

    def _quiet(self) -> bool:
        try:
            with Reader(self.stack.database_url, connect_timeout=5) as db:
                row = db.work_left(self.now, OUTBOX_LEASE)
        except StoreError:
            return False
        self.left = {"deliveries": row[0], "timers_due": row[1], "outbox_due": row[2],
                     "webhooks_pending": len(self.stack.sim.outbox.pending())} if row else {}
        return row is not None and not any(row) and self.stack.sim.outbox.pending() == []


def _report(stack: ChaosStack, driver: Driver, results: list[dict[str, Any]], seed: int, seconds: float,
            wall: float) -> dict[str, Any]:
    ledger = [e for e in stack.sim.ledger_entries() if e.source == "api"]
    with Reader(stack.database_url) as db:
        stored, attempts = db.delivery_counts(), db.attempt_count()
    violations = sum(len(v) for r in results for v in r["violations"].values()) + sum(
        not r["settled"] for r in results)
    return {
        "violations": violations, "seed": seed, "fault_seconds": round(seconds, 1), "wall_seconds": round(wall, 1),
        "customers": stack.customers, "faults_injected": len(results),
        "deliveries": {"acknowledged": stack.pump.acked_count, "distinct_acknowledged": len(stack.pump.acked),
                       "answers": dict(stack.pump.answers), "never_acknowledged": len(stack.pump.lost),
                       "stored": {str(k): int(v) for k, v in stored.items()}},
        "charges": {"api_attempts": len(ledger), "succeeded": sum(e.outcome == "succeeded" for e in ledger),
                    "intents": attempts,
                    "double_charges": len(stack.sim.double_charges())},
        "server_kills": {"postgres": stack.pg.kills, "redis": stack.redis.kills, "gateway": stack.gateway.kills,
                         "ray_node": stack.node_kills},
        "driver_tick_errors": driver.tick_errors,
        "faults": results,
    }


def _line(n: int, result: dict[str, Any]) -> str:
    bad = sum(len(v) for v in result["violations"].values())
    state = "ok" if bad == 0 and result["settled"] else f"{bad} violation(s)" + (
        "" if result["settled"] else ", unsettled")
    return f"round {n:>3}  {result['fault']:<26} {result['seconds']:>6.1f}s  acked {result['acknowledged']:>5}  {state}"


def render(report: dict[str, Any]) -> str:
    names = list(CHECKS)
    header = f"{'fault':<26} " + " ".join(f"{n[:12]:>12}" for n in names) + f" {'settled':>8}"
    lines = [header, "-" * len(header)]
    for r in report["faults"]:
        cells = " ".join(f"{('ok' if not r['violations'][n] else str(len(r['violations'][n]))):>12}" for n in names)
        lines.append(f"{r['fault']:<26} {cells} {('yes' if r['settled'] else 'NO'):>8}")
    for r in report["faults"]:
        for check, found in r["violations"].items():
            lines += [f"  {r['fault']} / {check}: {v}" for v in found[:5]]
    d, c = report["deliveries"], report["charges"]
    lines += ["", f"faults injected {report['faults_injected']} in {report['fault_seconds']} s "
              f"(wall {report['wall_seconds']} s); deliveries acknowledged {d['acknowledged']} "
              f"({d['distinct_acknowledged']} distinct), answers {d['answers']}",
              f"provider charges by payrisk {c['api_attempts']} ({c['succeeded']} succeeded), intents "
              f"{c['intents']}, double charges {c['double_charges']}; server kills {report['server_kills']}",
              f"violations: {report['violations']}"]
    return "\n".join(lines)
