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
from actors.home import BatchClaims, take_claim
from store import Conn, timers

log = structlog.get_logger("payrisk.timers")


class TimerClaims(BatchClaims[bool]):
    """The timers of one batch marked fired (`take`: True when this transaction fired it)."""

    def __init__(self, due: Sequence[dict[str, Any]]) -> None:
        super().__init__([t["timer_id"] for t in due], _fire)


async def _fire(conn: Conn, timer_ids: list[int]) -> dict[int, bool]:
    return dict.fromkeys(await timers.mark_fired_many(conn, timer_ids), True)


class TimerDecider:
    """Decide one fired timer, unless it had fired or was cancelled already (then None)."""

    def __init__(self, timer: dict[str, Any], claims: TimerClaims | None = None) -> None:
        self.timer = timer
        self._claims = claims  # None: fired on its own, marked in each transaction that runs it (a retry too)

    async def __call__(self, conn: Conn, state: dict[str, Any], ctx: Context) -> list[Decision] | None:
        timer = self.timer
        if not await take_claim(conn, self._claims, lambda: TimerClaims([timer]), timer["timer_id"]):
            return None
        if "invoice_id" not in timer["payload"]:
            log.warning("timer.unknown", timer_id=timer["timer_id"], payload=timer["payload"])
            return []
        return [decide_timer(state, timer["payload"]["invoice_id"], timer["payload"], ctx)]
