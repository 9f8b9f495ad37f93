"""Applying hand-offs: each delivery at most once, its status folded into the decision's transaction.

A batch claims all its deliveries with one statement before any customer decides (`DeliveryClaims.claim`: those
not yet applied are marked applied, locked in id order); each delivery's decider then only looks its claim up. A
delivery decided on its own claims itself the same way. A rollback un-claims everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actors.domain.decide import decide_inbound
from actors.domain.decisions import Context, Decision
from actors.executors.runtime import provider_attempts
from actors.home import BatchClaims, take_claim
from store import Conn, deliveries


class DeliveryClaims(BatchClaims[float]):
    """The claims of one batch's deliveries: delivery id → seconds from receipt to the claim (`take`)."""

    def __init__(self, items: Sequence[dict[str, Any]]) -> None:
        super().__init__([item["delivery_id"] for item in items], deliveries.claim_for_apply)


class DeliveryDecider:
    """Decide one delivery's events, unless it was applied already (then None). Its claim marks it applied."""

    def __init__(self, item: dict[str, Any], claims: DeliveryClaims | None = None) -> None:
        self.item = item
        self._claims = claims  # None: decided on its own, claimed in each transaction that runs it (a retry too)

    async def __call__(self, conn: Conn, state: dict[str, Any], ctx: Context) -> list[Decision] | None:
        item = self.item
        waited = await take_claim(conn, self._claims, lambda: DeliveryClaims([item]), item["delivery_id"])
        if waited is None:
            return None
        decisions = []
        for event in item["events"]:
            decisions.append(decide_inbound(state, event, ctx, item["delivery_id"]))
            state = decisions[-1].state
        if decisions:  # the provider's own attempts, for the ledger: written with the decisions
            decisions[-1].ledger.extend(provider_attempts(item["tenant_id"], item["customer_id"], item["events"],
                                                          state.get("cases")))
        item["waited"] = waited  # webhook stored → applied to the checkpoint, for the metric
        return decisions
