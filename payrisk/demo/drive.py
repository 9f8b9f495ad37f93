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
        """Everything that happens up to `to`, until the platform has nothing left to do at `to`."""
        system = self.stack.system
        self.stack.sim.advance(to)
        self.stack.set_clock(to)
        if self.mail is not None:
            self.mail.act_until(to)
        self.deliver()
        while ray.get(system.scheduler.tick.remote()) > 0:
            self.deliver()
        self.drain_outbox()
        if self.mail is not None:
            self.mail.read()

    def drain_outbox(self) -> None:
        """Send what the decisions asked for. A failing tick is recorded and reported, not fatal: the
        recovery itself (retries, their outcomes) does not depend on the emails."""
        try:
            while ray.get(self.stack.system.outbox.tick.remote()) > 0:
                pass
        except ray.exceptions.RayTaskError as exc:
            self.outbox_errors.append(str(exc.cause if exc.cause is not None else exc).splitlines()[-1][:300])

    def deliver(self) -> None:
        """Deliver the simulator's webhooks until none is left; wait until each one is applied."""
        while (accepted := self.stack.flush()) > 0:
            self.acknowledged += accepted
            self._wait_applied()

    def _wait_applied(self) -> None:
        deadline = time.monotonic() + self.apply_timeout
        pause = 0.002
        while self.reads.pending_deliveries() > 0:
            if time.monotonic() > deadline:
                raise DeliveriesStuckError(f"deliveries still unapplied after {self.apply_timeout:.0f}s")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

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
