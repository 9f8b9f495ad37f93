"""Reading the provider's charge ledger: what each approach failed, recovered and how it retried.

The ledger is the provider's truth (every charge attempt, whoever made it), so every approach is scored from
the same source. An invoice *failed* when its renewal attempt (`source="automatic"`) declined; it was
*recovered* when a later attempt succeeded. A customer paying the hosted invoice (source `customer`) is not a retry.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable

from payrisk.demo.summary import Approach, Money
from simulator.customer_actions import CUSTOMER_SOURCE
from simulator.ledger import LedgerEntry

#: Mastercard advice codes after which the card must not be retried (networks.md §2.1).
STOP_ADVICE = frozenset({"03", "21"})


def score(name: str, entries: Iterable[LedgerEntry], is_hard: Callable[[str], bool]) -> Approach:
    """One approach's row from its ledger (entries in the order they happened)."""
    by_invoice: dict[str, list[LedgerEntry]] = defaultdict(list)
    for entry in entries:
        by_invoice[entry.invoice].append(entry)
    failed = [rows for rows in by_invoice.values() if _renewal_declined(rows)]
    recovered = [rows for rows in failed if any(e.outcome == "succeeded" for e in rows)]
    paid = sum(1 for rows in failed for e in rows if e.source == CUSTOMER_SOURCE)
    return Approach(
        name=name,
        failed=len(failed),
        recovered=len(recovered),
        retries=sum(len(rows) - 1 for rows in failed) - paid,
        customer_payments=paid,
        revenue_failed=_by_currency(rows[0] for rows in failed),
        revenue_saved=_by_currency(rows[0] for rows in recovered),
        retries_after_do_not_retry=sum(_after_stop(rows, is_hard) for rows in failed),
    )


def _renewal_declined(rows: list[LedgerEntry]) -> bool:
    return rows[0].source == "automatic" and rows[0].outcome == "declined"


def _by_currency(entries: Iterable[LedgerEntry]) -> Money:
    total: Counter[str] = Counter()
    for entry in entries:
        total[entry.currency] += entry.amount
    return dict(total)


def _after_stop(rows: list[LedgerEntry], is_hard: Callable[[str], bool]) -> int:
    """Attempts made on a card after that card answered "never retry" on this invoice."""
    stopped: set[str] = set()
    count = 0
    for entry in rows:
        count += entry.payment_method in stopped
        if entry.outcome == "declined" and (
            is_hard(entry.decline_code or "") or entry.network_advice_code in STOP_ADVICE
        ):
            stopped.add(entry.payment_method)
    return count


def charges_per_key(entries: Iterable[LedgerEntry]) -> dict[str, int]:
    """How many charges each idempotency key produced → how many keys produced that many (JSON-keyed)."""
    per_key = Counter(e.idempotency_key for e in entries if e.idempotency_key)
    histogram = Counter(per_key.values())
    return {str(n): keys for n, keys in sorted(histogram.items())}


def collected(entries: Iterable[LedgerEntry], keys_prefix: str) -> Money:
    """Money the provider collected on attempts whose idempotency key starts with `keys_prefix`."""
    return _by_currency(
        e for e in entries if e.outcome == "succeeded" and (e.idempotency_key or "").startswith(keys_prefix)
    )
