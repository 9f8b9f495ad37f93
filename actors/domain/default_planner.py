"""The fixed fallback strategy: used when no strategy book is configured (and in tests of the core).

Mirrors the example flow: a soft decline is retried 3 hours later; when that fails, a fallback email goes
out and one final retry is scheduled 3 days later; then the case is exhausted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from actors.domain.decisions import Json, Plan

LADDER = (timedelta(hours=3), timedelta(days=3))
FINAL_ACTION = "leave_past_due"
STRATEGY: Json = {"id": "default", "version": 1, "segment": "default", "final_action": FINAL_ACTION}
_RETRY = {"SOFT_DECLINE", "RATE_LIMITED", "NETWORK_ERROR"}


class DefaultPlanner:
    def plan(self, *, customer: Json, case: Json, classification: Json, now: datetime,
             card_history: Sequence[datetime]) -> Plan:
        category = str(classification.get("category"))
        reason = classification.get("reason", "unknown")
        made = case["attempts_made"]
        max_attempts = _retries_allowed(case, classification)
        if category == "CONFIG_ERROR":
            return Plan("escalate", now + timedelta(hours=6), made + 1, max_attempts,
                        f"{category} {reason}: retries held, engineering alerted", STRATEGY, alert="engineering")
        if category == "FRAUD_FLAGGED":
            return Plan("halt", None, made, max_attempts, f"{category} {reason}: reported and halted", STRATEGY,
                        alert="fraud")
        if category in ("HARD_DECLINE", "AUTHENTICATION_REQUIRED"):
            return Plan("await_customer", now + timedelta(days=7), made + 1, max_attempts,
                        f"{category} {reason}: never retried; waiting 7 days for the customer to act", STRATEGY,
                        email_template="action_required")
        if category not in _RETRY or made >= max_attempts:
            return Plan("final", None, made, max_attempts, f"{category} {reason}: {made} of {max_attempts} used",
                        STRATEGY, email_template="final_notice", final_action=FINAL_ACTION)
        delay = max(LADDER[made], timedelta(seconds=int(classification.get("min_delay_seconds") or 0)))
        at = now + delay
        return Plan("retry", at, made + 1, max_attempts,
                    f"attempt {made + 1} of {max_attempts} at {at:%a %H:%M} UTC: {category} {reason}; "
                    f"strategy default v1", STRATEGY, email_template="payment_failed" if made >= 1 else None)


def _retries_allowed(case: Json, classification: Json) -> int:
    """Our own retries: the ladder's, fewer when the classification caps the invoice's charges.

    The cap counts every charge of the invoice, the provider's original (and its own retries) included.
    """
    cap = classification.get("max_attempts_cap")
    if cap is None:
        return len(LADDER)
    provider_charges = max(1, int(case.get("provider_failures") or 1))
    return max(0, min(len(LADDER), int(cap) - provider_charges))
