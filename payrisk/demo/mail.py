"""Simulated customers who read the dunning emails the demo's SMTP catcher caught, and act on some of them.

Each caught message names its notification in the `X-Payrisk-Notification` header
(`email:<tenant>:<invoice>:<template>:<attempts>`). The customer's answer comes from
`simulator.email_reaction.react` (paired luck: seeded by customer, invoice ordinal, template and the n-th email on
the invoice) and is carried out at its time by `simulator.customer_actions.act`: a new card, or the hosted invoice
paid. The baselines send no email, so they get no such help.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

from simulator.core import Simulator
from simulator.customer_actions import act, seen
from simulator.email_reaction import Action, EmailReactionConfig, load_reaction, react, reaction_rng

HEADER = "X-Payrisk-Notification"
#: Emails a customer may act on (the `recovered` confirmation asks for nothing).
DUNNING = frozenset({"payment_failed", "action_required", "final_notice"})


def dunning_email(message: EmailMessage) -> tuple[str, str] | None:
    """(invoice, template) of a dunning email, from its notification header; None for anything else."""
    parts = str(message.get(HEADER, "")).split(":")
    if len(parts) >= 4 and parts[0] == "email" and parts[3] in DUNNING:
        return parts[2], parts[3]
    return None


def sent_at(message: EmailMessage) -> datetime | None:
    """When the email was sent: its `Date` header (the platform's clock when it sent it); None without one."""
    value = message.get("Date")
    if not value:
        return None
    try:
        return parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None


class MailReaders:
    """Reads new caught mail after each step and carries out the customers' reactions when they fall due."""

    def __init__(self, sim: Simulator, messages: Callable[[], list[EmailMessage]], seed: int,
                 ordinal: Callable[[str, str], int], config: EmailReactionConfig | None = None) -> None:
        self.sim, self.messages, self.seed, self.ordinal = sim, messages, seed, ordinal
        self.config = config or load_reaction()
        self.read_count = 0
        self.per_invoice: Counter[str] = Counter()
        self.due: list[tuple[datetime, int, str, Action]] = []
        self.actions = 0  # reactions carried out (the invoice was still open)
        self._order = itertools.count()

    def read(self) -> None:
        """Every message caught since the last call: draw each reader's reaction and queue it."""
        caught = self.messages()
        for message in caught[self.read_count:]:
            found = dunning_email(message)
            if found is not None:
                self._react(*found, sent_at(message) or self.sim.now())
        self.read_count = len(caught)

    def act_until(self, to: datetime) -> None:
        """Carry out every reaction due by `to` (at `to`: the demo's steps are its resolution)."""
        while self.due and self.due[0][0] <= to:
            _, _, invoice, action = heapq.heappop(self.due)
            self.actions += act(self.sim, invoice, action)

    def _react(self, invoice: str, template: str, sent: datetime) -> None:
        self.per_invoice[invoice] += 1
        nth = self.per_invoice[invoice]
        email = seen(self.sim, invoice, template, nth, sent)
        if email is None:
            return
        customer = self.sim.billing.invoice(invoice).customer
        rng = reaction_rng(self.seed, customer, self.ordinal(customer, invoice), template, nth)
        reaction = react(self.config, email, rng)
        if reaction is not None:
            at = sent + reaction.after
            heapq.heappush(self.due, (at, next(self._order), invoice, reaction.action))
