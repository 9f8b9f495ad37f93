"""Card-network rule checks over our attempts ledger (reference/networks.md; limits: `strategies.network`).

Counts are per card fingerprint over rolling windows; a card breaks a rule when any window holds more attempts
than the limit. An approval resets the networks' counters, so counting every attempt is the strict reading.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from strategies.network import NetworkLimits, network_of


class AttemptRow(BaseModel):
    """One of our retry attempts, as the `attempts` table keeps it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    card: str  # fingerprint, or the customer id when the provider sent none
    brand: str | None
    at: datetime
    declined: bool


def busiest_window(times: Sequence[datetime], window: timedelta) -> int:
    """The most attempts inside any window of length `window` (times need not be sorted)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def violations(rows: Iterable[AttemptRow], limits: NetworkLimits | None = None) -> dict[str, int]:
    """Rule → how many cards broke it."""
    lim = limits or NetworkLimits()
    month, day = timedelta(days=lim.window_days), timedelta(hours=24)
    cards: dict[tuple[str, str], list[AttemptRow]] = defaultdict(list)
    for row in rows:
        cards[(network_of(row.brand), row.card)].append(row)
    found = {
        f"visa_over_{lim.visa_per_30d}_per_30d": 0,
        f"mastercard_over_{lim.mastercard_per_30d}_per_30d": 0,
        f"mastercard_over_{lim.per_day}_declines_per_24h": 0,
    }
    if lim.other_per_30d is not None:
        found[f"other_over_{lim.other_per_30d}_per_30d"] = 0
    for (network, _), attempts in cards.items():
        times = [a.at for a in attempts]
        if network == "visa":
            found[f"visa_over_{lim.visa_per_30d}_per_30d"] += busiest_window(times, month) > lim.visa_per_30d
        elif network == "mastercard":
            found[f"mastercard_over_{lim.mastercard_per_30d}_per_30d"] += (
                busiest_window(times, month) > lim.mastercard_per_30d
            )
            declines = [a.at for a in attempts if a.declined]
            found[f"mastercard_over_{lim.per_day}_declines_per_24h"] += (
                busiest_window(declines, day) > lim.per_day
            )
        elif lim.other_per_30d is not None:
            found[f"other_over_{lim.other_per_30d}_per_30d"] += (
                busiest_window(times, month) > lim.other_per_30d
            )
    return found
