"""Firing timers: each at most once, the batch's claims written with its decisions.

A batch marks all its timers fired with one statement before any customer decides (`TimerClaims.claim`: those still
pending, neither fired nor cancelled); each timer's decider then only looks its claim up. A rollback un-fires them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog

from actors.domain.decide import decide_timer
from actors.domain.decisions import Context, Decision
from store import Conn, timers

log = structlog.get_logger("payrisk.timers")


class TimerClaims:
    """The timers of one batch marked fired in the transaction whose deciders read them
    (`CustomerHome.decide_many(prepare=…)`)."""

    def __init__(self, due: Sequence[dict[str, Any]]) -> None:
        self._ids = [int(t["timer_id"]) for t in due]
        self._fired: set[int] | None = None

    async def claim(self, conn: Conn) -> None:
        self._fired = await timers.mark_fired_many(conn, self._ids)

    def fired(self, timer_id: int) -> bool:
        if self._fired is None:
            raise RuntimeError("the batch's timers were not claimed in this transaction")
        return timer_id in self._fired


class TimerDecider:
    """Decide one fired timer, unless it had fired or was cancelled already (then None)."""

    def __init__(self, timer: dict[str, Any], claims: TimerClaims | None = None) -> None:
        self.timer = timer
        self._claims = claims  # None: fired on its own, marked in each transaction that runs it (a retry too)

    async def __call__(self, conn: Conn, state: dict[str, Any], ctx: Context) -> list[Decision] | None:
        timer = self.timer
        if self._claims is None:
            if not await timers.mark_fired(conn, timer["timer_id"]):
                return None
        elif not self._claims.fired(int(timer["timer_id"])):
            return None
        if "invoice_id" not in timer["payload"]:
            log.warning("timer.unknown", timer_id=timer["timer_id"], payload=timer["payload"])
            return []
        return [decide_timer(state, timer["payload"]["invoice_id"], timer["payload"], ctx)]
