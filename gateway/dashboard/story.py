"""A customer's timeline as a story: each delivery and recorded event as one sentence a person reads, with the
explanation the decision recorded ("why this retry now"). Pure: items in, lines out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.dashboard.render import money, when

Item = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Line:
    at: Any
    kind: str  # delivery | failure | decision | attempt | email | outcome | operator | other
    title: str
    why: str | None = None


def _failed(p: Item) -> tuple[str, str]:
    return "failure", f"Payment failed: {money(p.get('amount_due'), p.get('currency'))} on {p.get('invoice_id')}"


def _classified(p: Item) -> tuple[str, str]:
    c = p.get("classification") or {}
    sources = ", ".join(str(s.get("source")) for s in p.get("details_from") or []) or "none"
    return "decision", f"Classified {c.get('category')} ({c.get('reason')}); codes from {sources}"


def _scheduled(p: Item) -> tuple[str, str]:
    return "decision", f"Retry {p.get('attempt_no')} of {p.get('max_attempts')} scheduled for {when(p.get('at'))}"


def _attempt(p: Item) -> tuple[str, str]:
    return "attempt", f"Attempt {p.get('attempt_no')} sent to the provider (key {p.get('idempotency_key')})"


def _attempt_failed(p: Item) -> tuple[str, str]:
    d = p.get("decline") or {}
    code = d.get("decline_code") or d.get("error_code") or "no code"
    return "attempt", f"Attempt {p.get('attempt_no')} declined ({code})"


def _notified(p: Item) -> tuple[str, str]:
    if p.get("topic") == "email":
        return "email", f"Email “{p.get('template')}” sent to the customer"
    return "other", f"{str(p.get('topic')).capitalize()} {p.get('kind') or ''} raised".replace("  ", " ")


def _recovered(p: Item) -> tuple[str, str]:
    credit = f", credited to {p['credited_to']}" if p.get("credited_to") else ""
    return "outcome", f"Recovered {money(p.get('amount'), p.get('currency'))} via {p.get('via')}{credit}"


def _operator(p: Item) -> tuple[str, str]:
    action = str(p.get("action")).replace("_", " ")
    return "operator", f"{p.get('principal')} asked: {action} — {p.get('outcome')}"


_SENTENCES: dict[str, Callable[[Item], tuple[str, str]]] = {
    "PaymentFailed": _failed,
    "FailureClassified": _classified,
    "RetryScheduled": _scheduled,
    "AttemptStarted": _attempt,
    "AttemptFailed": _attempt_failed,
    "AttemptSucceeded": lambda p: ("attempt", f"Attempt {p.get('attempt_no')} succeeded"),
    "AttemptUnknown": lambda p: ("attempt", f"Attempt {p.get('attempt_no')}: no answer yet (will be reconciled)"),
    "NotificationRequested": _notified,
    "AwaitingCustomer": lambda p: ("decision", "Waiting for the customer"),
    "Escalated": lambda p: ("decision", "Escalated to engineering; retries held"),
    "Halted": lambda p: ("outcome", "Halted"),
    "Exhausted": lambda p: ("outcome", f"Exhausted: final action {p.get('final_action') or 'none'}"),
    "RetryPaused": lambda p: ("decision", "Retry held by an open incident"),
    "InvoiceRecovered": _recovered,
    "InvoiceClosed": lambda p: ("outcome", f"Case closed: {p.get('reason')}"),
    "OperatorActed": _operator,
    "ProfileUpdated": lambda p: ("other", "Profile updated: " + ", ".join(sorted(p.get("profile") or {}))),
}


def line(item: Item) -> Line:
    if item["kind"] == "delivery":
        status = f"{item['status']}" + (f": {item['reason']}" if item.get("reason") else "")
        return Line(item["at"], "delivery", f"Webhook {item['type']} received ({status})")
    payload = item.get("payload") or {}
    sentence = _SENTENCES.get(item["type"])
    kind, title = sentence(payload) if sentence else ("other", item["type"])
    why = payload.get("explanation") or payload.get("reason") or None
    return Line(item["at"], kind, title, None if why and why in title else why)


def story(items: list[Item]) -> list[Line]:
    return [line(item) for item in items]
