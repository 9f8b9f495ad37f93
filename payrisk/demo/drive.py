"""Driving the platform through simulated time, one step at a time, and reporting each simulated day.

A step to time `to`: the simulator runs the renewals due → the platform clock moves to `to` → the scheduler fires
the timers already due while the simulator's webhooks go to the gateway, and we wait until every stored delivery
is applied → the outbox pass started by the previous step is collected and the customers read the mail it sent;
those whose reaction is due act → the scheduler fires the due timers until none is left (each retry calls the
simulator, whose webhooks are delivered again) → the outbox's pass at `to` starts, and runs on during the next
step (see `Driver.step`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, TextIO

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
        self._outbox: tuple[Any, datetime] | None = None  # the outbox pass under way, and its time
        #: wall seconds spent in each part of the steps (the driver waits for each in turn): where a run's time went
        self.phases: dict[str, float] = defaultdict(float)

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] += time.perf_counter() - began
            self.phases["n_" + name] += 1

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
        self.finish_outbox()  # the last step's emails
        if self.mail is not None:
            self.mail.read()

    def step(self, to: datetime) -> None:
        """Everything that happens up to `to`, until the platform has nothing left to do at `to`.

        The scheduler is asked to run only when a timer is due (one indexed read says so): the timers already due
        fire while the hour's webhooks are delivered, then again until none is due, each pass's retries' webhooks
        delivered before the next pass. The outbox's pass at `to` is started last and runs on
        while the next step's renewals are delivered: it sends as of `to` (its own clock argument), and each email
        carries that time, which is when its reader acts from. The emails are read at the next step."""
        system = self.stack.system
        moved = self.stack.move_clock(to)  # the platform's clock moves while the simulator runs the hour
        with self._phase("simulator"):
            self.stack.sim.advance(to)
        with self._phase("clock"):
            ray.get(moved)
        with self._phase("reads"):
            timers_due, _ = self.reads.work_due(to)
        # the timers already due fire while the hour's renewals are delivered (different customers, mostly; a
        # customer's own events are decided one at a time whichever comes first, as with a provider's traffic)
        tick, fired = (system.scheduler.tick.remote() if timers_due else None), 0
        self.deliver()
        with self._phase("outbox"):
            self.finish_outbox()
        if self.mail is not None:
            with self._phase("customers"):
                self.mail.read()
                before = self.mail.actions
                self.mail.act_until(to)
            if self.mail.actions != before:
                self.deliver()  # the new cards and payments
        while True:
            if tick is not None:
                with self._phase("scheduler"):
                    fired = ray.get(tick)
                if fired:
                    self.deliver()  # the retries' webhooks; their decisions may ask for timers and emails due now
            with self._phase("reads"):
                timers_due, outbox_due = self.reads.work_due(to)
            if not timers_due or (tick is not None and not fired):
                break  # nothing left due at `to` (or the scheduler fired none of what is due: not spinning)
            tick = system.scheduler.tick.remote()
        if outbox_due:
            self._outbox = (system.outbox.tick.remote(limit=OUTBOX_BATCH, at=to.isoformat()), to)

    def finish_outbox(self) -> None:
        """Wait for the outbox pass started by the last step (and take what a full batch left, at the same time).
        A failing pass is recorded and reported, not fatal: the recovery itself (retries, their outcomes) does not
        depend on the emails."""
        if self._outbox is None:
            return
        (ref, at), self._outbox = self._outbox, None
        try:
            while ray.get(ref) >= OUTBOX_BATCH:  # a full pass: there may be more due at `at`
                ref = self.stack.system.outbox.tick.remote(limit=OUTBOX_BATCH, at=at.isoformat())
        except ray.exceptions.RayTaskError as exc:
            self.outbox_errors.append(str(exc.cause if exc.cause is not None else exc).splitlines()[-1][:300])

    def deliver(self) -> None:
        """Deliver the simulator's webhooks until none is left; wait until each one is applied."""
        while True:
            with self._phase("store"):
                accepted = self.stack.flush()
            if accepted == 0:
                return
            self.acknowledged += accepted
            with self._phase("apply"):
                self._wait_applied()

    def _wait_applied(self) -> None:
        """Wait for the shards' answers to the hand-offs (in-process), then read the pending count (the partial
        index of pending deliveries, well under a millisecond) and, while some are left (over HTTP, or a hand-off
        being retried), read it again every 2 ms."""
        self.stack.settle()
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
