"""The holdout arm: a stable random share of each tenant's failed invoices handled by a baseline strategy.

Membership is a hash of (tenant, invoice) — nothing the policy looks at — so the arms are comparable (random
assignment) and replay assigns every invoice to the same arm again (I5). The shares are data
(``strategies/holdouts.json``).
"""

from __future__ import annotations

import functools
import hashlib

from pydantic import BaseModel, ConfigDict, Field

from strategies.files import PACKAGE_DIR, read_model

HOLDOUTS_FILE = PACKAGE_DIR / "holdouts.json"
HOLDOUT_SEGMENT = "holdout"


class Holdouts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    version: int = Field(ge=1)
    description: str = ""
    strategy: str  # the baseline strategy's id
    default_share: float = Field(ge=0, le=0.5)
    tenants: dict[str, float] = {}

    def share(self, tenant: str) -> float:
        return self.tenants.get(tenant, self.default_share)

    def is_held_out(self, tenant: str, invoice: str) -> bool:
        return holdout_draw(tenant, invoice) < self.share(tenant)


def holdout_draw(tenant: str, invoice: str) -> float:
    """A uniform number in [0, 1) fixed by tenant and invoice."""
    digest = hashlib.sha256(f"holdout:{tenant}:{invoice}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@functools.cache
def default_holdouts() -> Holdouts:
    return read_model(HOLDOUTS_FILE, Holdouts)
