"""Simulated customers who read dunning emails: whether one acts on an email, how, and after how long.

Pure and seeded: `react(config, seen, rng)` gives the same answer for the same email and seed, so every policy
compared on one population meets the same customers. The numbers are data (`data/email_reaction.json`); read
its description for how little public evidence stands behind them.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

REACTION_FILE = Path(__file__).with_name("data") / "email_reaction.json"
Action = Literal["update_card", "pay_invoice"]


class EmailReactionConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    version: int
    description: str = ""
    act_probability: dict[str, float]  # template → chance a customer acts on it (first email, fresh failure)
    hard_decline_multiplier: float = 1.0  # the card cannot work again: the email asks for a new one
    repeat_decay: float = Field(default=1.0, gt=0, le=1)  # the n-th email on one invoice × decay^(n-1)
    age_halflife_days: float = Field(default=1e9, gt=0)
    hour_multipliers: list[tuple[int, int, float]] = []  # [start, end) local hour of delivery → multiplier
    amount_multipliers: list[tuple[int, int, float]] = []  # [low, high) invoice amount (minor units)
    median_delay_hours: dict[str, float]
    delay_spread: float = Field(default=0.8, ge=0)  # sigma of the log-normal delay
    pay_share: float = Field(default=0.3, ge=0, le=1)  # of those who act, who pay the hosted invoice


@dataclass(frozen=True, slots=True)
class EmailSeen:
    """One dunning email as the customer receives it."""

    template: str
    local_hour: int
    days_since_failure: float
    nth_on_invoice: int  # 1 for the first email about this invoice
    hard_decline: bool  # the card said it will never work again (lost, stolen, expired, …)
    amount: int


@dataclass(frozen=True, slots=True)
class Reaction:
    action: Action
    after: timedelta


@lru_cache(maxsize=4)
def load_reaction(path: Path = REACTION_FILE) -> EmailReactionConfig:
    return EmailReactionConfig.model_validate(json.loads(path.read_text()))


def act_probability(cfg: EmailReactionConfig, seen: EmailSeen) -> float:
    p = cfg.act_probability.get(seen.template, 0.0)
    p *= cfg.hard_decline_multiplier if seen.hard_decline else 1.0
    p *= cfg.repeat_decay ** max(0, seen.nth_on_invoice - 1)
    p *= 0.5 ** (max(0.0, seen.days_since_failure) / cfg.age_halflife_days)
    p *= _band(cfg.hour_multipliers, seen.local_hour) * _band(cfg.amount_multipliers, seen.amount)
    return min(1.0, float(p))


def react(cfg: EmailReactionConfig, seen: EmailSeen, rng: random.Random) -> Reaction | None:
    """Whether the customer acts on this email (None: ignored), how, and after how long."""
    if rng.random() >= act_probability(cfg, seen):
        return None
    action: Action = "pay_invoice" if rng.random() < cfg.pay_share else "update_card"
    median = cfg.median_delay_hours.get(seen.template, 24.0)
    hours = median * math.exp(cfg.delay_spread * rng.gauss(0.0, 1.0))
    return Reaction(action, timedelta(hours=min(hours, 24.0 * 14)))


def reaction_rng(seed: int, customer: str, nth_invoice: int, template: str, nth_email: int) -> random.Random:
    """Paired luck: the same customer, invoice ordinal and email number draw the same numbers in every run."""
    return random.Random(f"{seed}:email:{customer}:{nth_invoice}:{template}:{nth_email}")


def _band(bands: list[tuple[int, int, float]], value: int) -> float:
    return next((m for low, high, m in bands if low <= value < high), 1.0)
