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
from store import Conn, deliveries


class DeliveryClaims:
    """The claims of one batch's deliveries: delivery id → seconds from receipt to the claim. `claim` must run in
    the transaction whose deciders read them (`CustomerHome.decide_many(prepare=…)`)."""

    def __init__(self, items: Sequence[dict[str, Any]]) -> None:
        self._ids = [int(item["delivery_id"]) for item in items]
        self._claimed: dict[int, float] | None = None

    async def claim(self, conn: Conn) -> None:
        self._claimed = await deliveries.claim_for_apply(conn, self._ids)

    def waited(self, delivery_id: int) -> float | None:
        """Seconds from receipt when this transaction claimed the delivery; None when it is not to be applied
        (applied, ignored or quarantined already, or unknown)."""
        if self._claimed is None:
            raise RuntimeError("the batch's deliveries were not claimed in this transaction")
        return self._claimed.get(delivery_id)


class DeliveryDecider:
    """Decide one delivery's events, unless it was applied already (then None). Its claim marks it applied."""

    def __init__(self, item: dict[str, Any], claims: DeliveryClaims | None = None) -> None:
        self.item = item
        self._claims = claims  # None: decided on its own, claimed in each transaction that runs it (a retry too)

    async def __call__(self, conn: Conn, state: dict[str, Any], ctx: Context) -> list[Decision] | None:
        item = self.item
        if self._claims is None:
            waited = (await deliveries.claim_for_apply(conn, [item["delivery_id"]])).get(item["delivery_id"])
        else:
            waited = self._claims.waited(item["delivery_id"])
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
