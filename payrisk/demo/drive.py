"""Driving the platform through simulated time, one step at a time, and reporting each simulated day.

A step to time `to`: the simulator runs the renewals due → the platform clock moves to `to` → customers who
read a dunning email act if their reaction is due (`payrisk.demo.mail`) → the simulator's webhooks go to the
gateway, and we wait until every acknowledged delivery is applied → the scheduler fires the due timers until
none is left (each retry calls the simulator, whose webhooks are delivered again) → the outbox sends what the
decisions asked for, and the customers read the mail it sent.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TextIO

import ray

from payrisk.demo.mail import MailReaders
from payrisk.demo.reads import Reads
from payrisk.demo.stack import DemoStack
from payrisk.errors import CliError
from payrisk.progress import progress_bar


#: rows one outbox pass takes (emails and provider actions each); a pass that takes fewer took everything due
OUTBOX_BATCH = 200


class DeliveriesStuckError(CliError):
    """Acknowledged deliveries were not applied in time (the platform is not keeping up or is broken)."""


class Driver:
    def __init__(self, stack: DemoStack, reads: Reads, out: TextIO, apply_timeout: float = 120.0,
                 mail: MailReaders | None = None) -> None:
        self.stack, self.reads, self.out = stack, reads, out
        self.mail = mail  # customers who read the caught dunning emails and may act on them
        self.apply_timeout = apply_timeout
        self.acknowledged = 0  # webhook deliveries the gateway answered 2xx, counted on the simulator's side
        self.outbox_errors: list[str] = []  # failed outbox ticks (emails and provider actions not sent)

    def run(self, days: int, step: timedelta) -> None:
        start = self.stack.sim.now()
        with progress_bar(self.out, days, "simulated days") as bar:
            for day in range(1, days + 1):
                before, wall = self._counts(), time.monotonic()
                at, day_end = start + timedelta(days=day - 1), start + timedelta(days=day)
                while at < day_end:
                    at = min(at + step, day_end)
                    self.step(at)
                bar.advance(1, self._report(day, days, before, self._counts(), time.monotonic() - wall))

    def step(self, to: datetime) -> None:
        """Everything that happens up to `to`, until the platform has nothing left to do at `to`. The scheduler
        and the outbox are asked to run only when a timer or a message is due (one indexed read says so): most
        simulated hours have neither, and each pass is a few round trips through Ray and PostgreSQL."""
        system = self.stack.system
        self.stack.sim.advance(to)
        self.stack.set_clock(to)
        if self.mail is not None:
            self.mail.act_until(to)
        self.deliver()
        timers_due, outbox_due = self.reads.work_due(to)
        while timers_due or outbox_due:
            # the scheduler and the outbox pass side by side, as their loops run in a live installation
            fired = system.scheduler.tick.remote() if timers_due else None
            sent = self.outbox_pass() if outbox_due else False
            fired_any = fired is not None and ray.get(fired) > 0
            self.deliver()  # the retries' webhooks; their decisions may ask for timers and emails due now
            if not fired_any and not sent:
                break  # what is due is leased to an earlier pass: the next step takes it
            timers_due, outbox_due = self.reads.work_due(to)
        if self.mail is not None:
            self.mail.read()

    def outbox_pass(self) -> bool:
        """One pass of the outbox (emails, alerts, provider actions due now); True when it took a full batch (there
        may be more). A failing pass is recorded and reported, not fatal: the recovery itself (retries, their
        outcomes) does not depend on the emails."""
        try:
            return bool(ray.get(self.stack.system.outbox.tick.remote(limit=OUTBOX_BATCH)) >= OUTBOX_BATCH)
        except ray.exceptions.RayTaskError as exc:
            self.outbox_errors.append(str(exc.cause if exc.cause is not None else exc).splitlines()[-1][:300])
            return False

    def deliver(self) -> None:
        """Deliver the simulator's webhooks until none is left; wait until each one is applied."""
        while (accepted := self.stack.flush()) > 0:
            self.acknowledged += accepted
            self._wait_applied()

    def _wait_applied(self) -> None:
        """Poll the pending count (a read of the partial index of pending deliveries, well under a millisecond)
        every 2 ms: the shards apply a step's batch in a few tens of milliseconds."""
        deadline = time.monotonic() + self.apply_timeout
        while self.reads.pending_deliveries() > 0:
            if time.monotonic() > deadline:
                raise DeliveriesStuckError(f"deliveries still unapplied after {self.apply_timeout:.0f}s")
            time.sleep(0.002)

    def _counts(self) -> tuple[int, int, int, int]:
        """(renewals declined, deliveries, invoices recovered, retries) so far."""
        failed = sum(
            1 for e in self.stack.sim.ledger_entries() if e.source == "automatic" and e.outcome == "declined"
        )
        return (failed, *self.reads.progress())

    def _report(
        self, day: int, days: int, before: tuple[int, ...], after: tuple[int, ...], seconds: float
    ) -> str:
        (failed, deliveries, recovered, retries), delta = (
            after,
            [a - b for a, b in zip(after, before, strict=True)],
        )
        rate = delta[1] / seconds if seconds > 0 else 0.0
        return (
            f"day {day:>3}/{days}  failures {failed:>7,} (+{delta[0]:,})  recoveries {recovered:>6,} "
            f"(+{delta[2]:,})  retries {retries:>7,} (+{delta[3]:,})  deliveries {deliveries:>9,} "
            f"({rate:,.0f}/s)"
        )
